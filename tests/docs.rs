//! The README documents what the server exposes: every Prometheus series the code renders.

use std::path::Path;

/// `llhls_...` metric names in a Rust source file (crate paths such as `llhls_packager::`
/// are not metrics).
fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("llhls_") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let crate_path = text[at + name.len()..].starts_with("::");
        if !crate_path && name.len() > 6 && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[test]
fn the_readme_documents_every_metric() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut names = Vec::new();
    for file in [
        "origin/src/metrics.rs",
        "origin/src/stats.rs",
        "ingest/src/whip/mod.rs",
        "ingest/src/srt/mod.rs",
        "ingest/src/admission.rs",
        "ingest/src/events.rs",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        names.extend(metric_names(&text));
    }
    for must in [
        "llhls_parts_published_total",
        "llhls_stream_gap_parts_total",
        "llhls_whip_sessions",
        "llhls_srt_sessions",
    ] {
        assert!(
            names.iter().any(|n| n == must),
            "the scan missed {must}: {names:?}"
        );
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !n.ends_with("_bucket") && !n.ends_with("_sum") && !n.ends_with("_count"))
        .filter(|n| !readme.contains(&format!("`{n}`")) && !readme.contains(&format!("`{n}{{")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not document {missing:?}"
    );
}
