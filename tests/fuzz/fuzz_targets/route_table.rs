//! The route table as a file or an admin API body: any text is either refused with an error
//! or accepted as a table the proxy builds and can route with, and a refused table leaves the
//! running one in place.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proxy::{Shared, TableSpec, UpstreamSettings};

const GOOD: &str = "backends:\n  - {name: v1, endpoints: [\"127.0.0.1:9\"]}\nroutes:\n  - {name: app, stable: v1}\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let shared = Shared::new(&UpstreamSettings::default(), None, None);
    let good: TableSpec = sluice_proxy::config::parse_yaml(GOOD).expect("the good table");
    rt.block_on(shared.apply(good))
        .expect("the good table builds");
    let before = shared.table();
    let parsed = [
        sluice_proxy::config::parse_yaml::<TableSpec>(text),
        sluice_api::parse::parse_json::<TableSpec>(data),
    ];
    for spec in parsed.into_iter().flatten() {
        match rt.block_on(shared.apply(spec)) {
            Ok(table) => {
                let uri: http::Uri = "/".parse().expect("a URI");
                let _ = sluice_proxy::router::route(&table, &uri, &http::HeaderMap::new());
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                assert!(std::sync::Arc::ptr_eq(&before, &shared.table()));
            }
        }
    }
});
