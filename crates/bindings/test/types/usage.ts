// A TypeScript program against the package's types, compiled by test/types.test.js with
// `tsc --noEmit --strict` (never run): both classes, the result types and SandboxError.
import {
  binding,
  ErrorCode,
  ExecutionResult,
  inferCapabilities,
  JsonValue,
  MAX_NESTING,
  NexusRuntime,
  RuntimeStats,
  SandboxError,
  SandboxExecutor,
  StateMutation,
  SuspensionStore,
  WasmSandboxExecutor,
} from '../..';

async function native(): Promise<number> {
  const runtime = new NexusRuntime({ poolSize: 4, queueBound: 100, preload: [{ name: 'sdk.js', source: 'var sdk = {};' }] });
  const expiresAfterMs: number = runtime.suspensionTimeoutMs;
  // @ts-expect-error the suspension timeout is read-only: it is the configuration's
  runtime.suspensionTimeoutMs = expiresAfterMs;
  const result: ExecutionResult = await runtime.executeHandler(
    '$state.count = $state.count + 1; return $state.count;',
    { stateSnapshot: { count: 1 }, capabilities: ['state:read:count', 'state:write:count'], timeoutMs: 1000 },
    500,
  );
  const state: Record<string, JsonValue> = { count: 1 };
  for (const mutation of result.stateMutations satisfies StateMutation[]) {
    if (mutation.op === 'set') state[mutation.key] = mutation.value;
    else delete state[mutation.key];
  }
  if (result.status === 'suspended' && result.suspension) {
    const [call] = result.suspension.calls;
    await runtime.resumeHandler(result.suspension.id, call.callId, { value: { temp: 21 } });
  }
  const code: ErrorCode | undefined = result.error?.code;
  const line: number | undefined = result.error?.location?.line;
  const stats: RuntimeStats = await runtime.getStats();
  await runtime.shutdown(1000);
  return (code ? 1 : 0) + (line ?? 0) + stats.queued + result.metrics.executionTimeUs;
}

async function executor(): Promise<JsonValue> {
  const executor = new WasmSandboxExecutor({
    extensions: { weather: { get: async (city: string) => ({ city, temp: 21 }) } },
    onEvent: (event) => console.log(event.name, event.payload),
    timeoutMs: 2000,
  });
  const legacy: SandboxExecutor = new SandboxExecutor({ runtime: executor.runtime });
  const state: Record<string, JsonValue> = { city: 'Paris' };
  // State and arguments typed by the application's own interfaces: checked at run time.
  interface PanelState { city: string; visits: number }
  interface ForecastArgs { days: number }
  const typedState: PanelState = { city: 'Paris', visits: 1 };
  const typedArgs: ForecastArgs = { days: 3 };
  await executor.executeHandler('return $args.days;', { state: typedState, args: typedArgs });
  try {
    const value = await executor.executeHandler(
      'const w = await $ext.weather.get($state.city); return w.temp;',
      { state, capabilities: ['state:read:city', 'ext:weather'] },
      1000,
    );
    const tool = { name: 'forecast', parameters: { type: 'object' as const }, handler: 'return $args;' };
    await legacy.executeTool(tool, { days: '3' }, { state });
    const inferred = await inferCapabilities('return $state.city;');
    const inferredTs = await inferCapabilities('const city: string = $state.city; return city;', { language: 'typescript' });
    void inferredTs.capabilities;
    const tokens: string[] = inferred.capabilities;
    return [value, tokens.length, MAX_NESTING, binding.profile];
  } catch (error) {
    if (error instanceof SandboxError) {
      const code: ErrorCode = error.code;
      return { code, line: error.location?.line ?? null, tool: error.toolName };
    }
    throw error;
  } finally {
    await executor.shutdown();
  }
}

// Suspensions shared through Redis, or kept in a directory.
const shared: SuspensionStore = { redis: 'redis://127.0.0.1:6379/0', prefix: 'app:', timeoutMs: 500 };
const local: SuspensionStore = { dir: '/var/lib/app/suspensions' };
const sharing = new NexusRuntime({ suspensionStore: shared, suspensionKeys: [Buffer.alloc(32)] });
// @ts-expect-error a store is a directory or a Redis, not a prefix alone
const noStore: SuspensionStore = { prefix: 'app:' };

// Documented usage the types must allow: an extension that is a class instance, a call that
// returned nothing, bytecode as a plain Uint8Array, and SandboxError's own constructor.
class Weather {
  async get(city: string) {
    return { city, temp: 21 };
  }
}
const withClass = new WasmSandboxExecutor({ extensions: { weather: new Weather() } });
async function documented(runtime: NexusRuntime, id: string, bytes: Uint8Array): Promise<void> {
  await runtime.resumeHandler(id, 1, { value: undefined });
  await withClass.executeHandler(bytes);
  await withClass.executeHandler({ bytecode: bytes });
}
const made = new SandboxError('INVALID_ARGUMENT', 'made by the application', { handlerCode: 'MINE' });
// @ts-expect-error the constructor takes a code first
new SandboxError('just a message');

// What the types refuse.
// @ts-expect-error not an error code
const unknownCode: ErrorCode = 'NOT_A_CODE';
// @ts-expect-error the nesting limit is a fixed number
const otherLimit: typeof MAX_NESTING = 64;
// @ts-expect-error the state is an object (its values, JSON data, are checked at run time)
new WasmSandboxExecutor().executeHandler('return 1', { state: 'counter' });

export { native, executor, unknownCode, otherLimit, local, sharing, noStore, documented, made };
