//! Rollout, AnalysisTemplate and LocalRuntime documents as users write them: any text is
//! parsed and linted without a panic, and every refusal names what is wrong.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(documents) = sluice_controller::spec::parse_documents(text) {
        for d in documents {
            if let Err(e) = d {
                assert!(!e.to_string().is_empty());
            }
        }
    }
    let report = sluice_controller::lint::lint_text("fuzz.yaml", text);
    let _ = format!("{report:?}");
});
