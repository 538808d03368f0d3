//! How rollouts look in a terminal: `get rollout` as a tree like Argo's, `list rollouts` as a
//! table.

use std::fmt::Write as _;

use crate::analysis::run::MeasurementPhase;
use crate::control::service::{RolloutSummary, RolloutView};
use crate::status::Phase;

fn phase_mark(p: Phase) -> &'static str {
    match p {
        Phase::Healthy => "✔ Healthy",
        Phase::Progressing => "◌ Progressing",
        Phase::Paused => "॥ Paused",
        Phase::Degraded => "✖ Degraded",
    }
}

fn ms(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s.is_infinite() => ">100s".into(),
        Some(s) if s < 0.001 => format!("{:.0}µs", s * 1e6),
        Some(s) => format!("{:.1}ms", s * 1e3),
    }
}

/// The tree of one rollout.
pub fn rollout(v: &RolloutView) -> String {
    let mut o = String::new();
    let s = &v.status;
    let _ = writeln!(o, "Name:            {}", v.name);
    let _ = writeln!(o, "Namespace:       {}", v.namespace);
    let _ = writeln!(o, "Status:          {}", phase_mark(s.phase));
    if !s.message.is_empty() {
        let _ = writeln!(o, "Message:         {}", s.message);
    }
    if let Some(e) = &v.runtime_error {
        let _ = writeln!(o, "Runtime error:   {e}");
    }
    let _ = writeln!(
        o,
        "Strategy:        {}",
        if v.strategy == "canary" {
            "Canary"
        } else {
            "BlueGreen"
        }
    );
    if v.strategy == "canary" {
        let step = s.current_step_index.unwrap_or(0).min(v.steps);
        let _ = writeln!(o, "  Step:          {step}/{}", v.steps);
    }
    if let Some(w) = &s.canary.weights {
        let canary = w.canary.as_ref().map_or(0, |c| c.weight);
        let _ = writeln!(o, "  SetWeight:     {canary}/{}", w.total);
        let _ = writeln!(
            o,
            "  ActualWeight:  {} (acknowledged by {}/{} proxies, generation {})",
            if w.verified {
                canary.to_string()
            } else {
                "applying".to_owned()
            },
            w.acknowledged,
            w.expected,
            v.generation
        );
    }
    if v.paused {
        let _ = writeln!(o, "  Paused:        by a person (resume to go on)");
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<9}{:<9}{:<28}{:<24}{:<9}{:>9}{:>8}{:>10}",
        "REVISION", "ROLE", "IMAGES", "ADDRESSES", "HEALTHY", "REQ/S", "ERR%", "P99"
    );
    for r in &v.revisions {
        let err = r
            .stats
            .error_rate
            .map_or("-".to_owned(), |e| format!("{:.1}%", e * 100.0));
        let _ = writeln!(
            o,
            "{:<9}{:<9}{:<28}{:<24}{:<9}{:>9.1}{:>8}{:>10}",
            r.revision,
            r.role,
            r.images.join(","),
            r.addresses.join(","),
            format!("{}/{}", r.healthy, r.addresses.len()),
            r.stats.rate,
            err,
            ms(r.stats.p99_seconds)
        );
    }
    if !v.analysis_runs.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "ANALYSIS RUNS");
        for a in &v.analysis_runs {
            let _ = writeln!(o, "  {:<44} {:?}", a.name, a.phase);
            if let Some(e) = &a.error {
                let _ = writeln!(o, "    error: {e}");
            }
            for m in &a.metrics {
                let values: Vec<String> = m
                    .measurements
                    .iter()
                    .map(|(val, p)| {
                        let mark = match p {
                            MeasurementPhase::Successful => "✔",
                            MeasurementPhase::Failed => "✖",
                            MeasurementPhase::Inconclusive => "?",
                            MeasurementPhase::Error => "⚠",
                        };
                        format!("{} {mark}", short(val))
                    })
                    .collect();
                let waiting = m
                    .waiting
                    .as_ref()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default();
                let dry = if m.dry_run { " [dry run]" } else { "" };
                let _ = writeln!(o, "    {}{dry}: {}{waiting}", m.name, values.join("  "));
                if let Some(d) = &m.detail {
                    let _ = writeln!(o, "      {}", d.lines().next().unwrap_or_default());
                }
            }
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "{}", progress(v));
    o
}

fn short(v: &str) -> String {
    match v.parse::<f64>() {
        Ok(n) => format!("{n:.3}"),
        Err(_) => v.chars().take(24).collect(),
    }
}

fn progress(v: &RolloutView) -> String {
    let s = &v.status;
    let (w, total) = s.canary.weights.as_ref().map_or((0, 100), |w| {
        (w.canary.as_ref().map_or(0, |c| c.weight), w.total.max(1))
    });
    let filled = (w as usize * 20) / total as usize;
    let bar = format!(
        "[{}{}]",
        "#".repeat(filled),
        "-".repeat(20 - filled.min(20))
    );
    match s.phase {
        Phase::Healthy => format!("progress: {bar} revision {} is stable", stable_rev(v)),
        Phase::Degraded => format!(
            "progress: {bar} aborted; traffic on revision {}",
            stable_rev(v)
        ),
        _ => format!("progress: {bar} {w}/{total} to the new revision"),
    }
}

fn stable_rev(v: &RolloutView) -> String {
    let stable = v.status.stable_rs.clone().unwrap_or_default();
    v.revisions
        .iter()
        .find(|r| r.pod_template_hash == stable)
        .map_or("?".into(), |r| r.revision.to_string())
}

/// The table of `list rollouts`.
pub fn list(items: &[RolloutSummary]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<20}{:<12}{:<11}{:<14}{:<8}{:<12}MESSAGE",
        "NAME", "NAMESPACE", "STRATEGY", "STATUS", "STEP", "WEIGHT"
    );
    for r in items {
        let step = r.step.map_or("-".into(), |(a, b)| format!("{a}/{b}"));
        let weight = r.weight.map_or("-".into(), |(w, t, ok)| {
            format!("{w}/{t}{}", if ok { "" } else { " *" })
        });
        let _ = writeln!(
            o,
            "{:<20}{:<12}{:<11}{:<14}{:<8}{:<12}{}",
            r.name,
            r.namespace,
            r.strategy,
            format!("{:?}", r.phase),
            step,
            weight,
            r.message
        );
    }
    o
}
