const value = await $ext.kv.get($args.key);
return value + 1;
