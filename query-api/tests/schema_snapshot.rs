//! The GraphQL schema as clients see it is checked in as `query-api/schema.graphql`, so a change
//! to it shows in review as a change to that file. After a deliberate change, rewrite it with
//! `UPDATE_SNAPSHOTS=1 cargo test -p query-api --test schema_snapshot` and commit both.
use std::path::PathBuf;

const UPDATE: &str = "UPDATE_SNAPSHOTS=1 cargo test -p query-api --test schema_snapshot";

#[test]
fn the_schema_matches_the_checked_in_sdl() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let sdl = query_api::build_schema().sdl();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &sdl).expect("the snapshot is writable");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != sdl {
        panic!(
            "the GraphQL schema differs from {}{}\n\
             If the change is meant, run `{UPDATE}` and commit the file.",
            path.display(),
            first_difference(&checked_in, &sdl),
        );
    }
}

/// Where the two texts part, as one line of each, so the failure says what changed.
fn first_difference(checked_in: &str, built: &str) -> String {
    let mut checked_in = checked_in.lines();
    let mut built = built.lines();
    for line in 1.. {
        match (checked_in.next(), built.next()) {
            (Some(old), Some(new)) if old == new => continue,
            (None, None) => break,
            (old, new) => {
                let show =
                    |text: Option<&str>| text.map_or("(end of file)".into(), |t| format!("`{t}`"));
                return format!(
                    " from line {line}:\n  checked in: {}\n  built now:  {}",
                    show(old),
                    show(new)
                );
            }
        }
    }
    " (only in line endings)".into()
}
