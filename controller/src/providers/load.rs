//! The `load` provider: a warm-up sent to a revision with the loadtest library (scenario
//! B2); the result is the success rate.

use std::time::Duration;

use crate::analysis::expr::Value;
use crate::analysis::run::ProviderOutcome;
use crate::spec::defaults;
use crate::spec::template::{LoadProvider, RevisionRole};

/// One measurement of a `load` metric, given the addresses of the revision under analysis
/// and of the stable one.
pub async fn measure(x: &LoadProvider, revision: &[String], stable: &[String]) -> ProviderOutcome {
    let addresses = match x.revision {
        RevisionRole::Canary => revision,
        RevisionRole::Stable => stable,
    };
    let url = match (&x.url, addresses.first()) {
        (Some(u), _) => u.clone(),
        (None, Some(a)) => format!("http://{a}{}", x.path.as_deref().unwrap_or("/")),
        (None, None) => {
            return ProviderOutcome::Error("the revision has no address to warm up".into());
        }
    };
    let Ok(uri) = url.parse() else {
        return ProviderOutcome::Error(format!("{url} is not a URL"));
    };
    let mut cfg = sluice_loadtest::LoadConfig::new(
        uri,
        x.concurrency.unwrap_or(defaults::LOAD_CONCURRENCY).max(1) as usize,
    );
    cfg.requests = Some(x.requests);
    cfg.duration = Some(Duration::from_secs(300));
    for (k, v) in &x.headers {
        if let (Ok(k), Ok(v)) = (k.parse(), v.parse()) {
            cfg.headers.push((k, v));
        }
    }
    match sluice_loadtest::run(cfg).await {
        Ok(r) => {
            tracing::info!(
                url,
                success_rate = r.success_rate(),
                p99_us = r.latency.p99_us,
                "warm-up done"
            );
            ProviderOutcome::Value(Value::Number(r.success_rate()))
        }
        Err(e) => ProviderOutcome::Error(format!("warm-up: {e}")),
    }
}
