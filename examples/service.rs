//! A small service embedding the Nexus runtime: it runs `examples/weather.js` for a panel,
//! performing the handler's extension calls itself, and prints the result.
//!
//! Run: `cargo run --example service` (set `RUST_LOG=debug` to see the execution spans).

use std::time::Duration;

use nexus::{ExecutionRequest, ExtOutcome, ExtensionHost, Runtime, RuntimeConfig};
use serde_json::{Value, json};

/// The application's side of the `weather` extension.
struct WeatherService;

impl ExtensionHost for WeatherService {
    async fn call(&self, extension: &str, method: &str, args: Vec<Value>) -> ExtOutcome {
        match (extension, method, args.first().and_then(Value::as_str)) {
            ("weather", "get", Some(city)) => {
                // Stands in for the HTTP request a real service would make.
                tokio::time::sleep(Duration::from_millis(20)).await;
                ExtOutcome::Ok(json!({ "city": city, "temp": 21 }))
            }
            _ => ExtOutcome::Err { code: Some("BAD_CALL".into()), message: format!("no {extension}.{method}") },
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let runtime = Runtime::start(RuntimeConfig::default())?;

    let mut request = ExecutionRequest::source(std::fs::read_to_string("examples/weather.js")?);
    request.panel_id = "panel-42".into();
    request.handler_name = "refreshWeather".into();
    request.state_snapshot = json!({ "city": "Paris" }).as_object().cloned().unwrap_or_default();
    for token in ["state:read:city", "state:write:status", "view:update:forecast", "ext:weather"] {
        request.capabilities.push(token.parse()?);
    }
    request.extension_registry.insert("weather".into(), ["get".to_owned()].into());

    let result = runtime.run_to_completion(request, &WeatherService).await?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    println!("{}", runtime.prometheus().await);
    runtime.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
