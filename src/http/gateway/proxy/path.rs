//! The path a proxied request is routed, decided and forwarded on.
//!
//! The decision (access rules) and the upstream must read one path, or a
//! client could be let in for one and served another. So, as nginx does
//! before it matches a location:
//! - runs of `/` are merged into one (`//admin` is `/admin`);
//! - a `.` or `..` segment, plain or percent-encoded, is refused rather
//!   than resolved: browsers and HTTP libraries resolve them before
//!   sending, so only a crafted request holds one;
//! - an encoded slash or a backslash (`%2F`, `%5C`, `\`) is refused: one
//!   upstream reads `/admin%2Fx` as `/admin/x`, another as one segment, so
//!   no reading of it is safe for path-based rules (Envoy's advice for
//!   `path_with_escaped_slashes_action` when authorizing by path).
//!
//! The decision reads the path as the router does (percent-decoded); the
//! upstream gets the client's own encoding.

/// A proxied request's path under the tenant's mount, both ways.
#[derive(Debug, PartialEq, Eq)]
pub struct Paths {
    /// Decoded as routed, `/` at least: what is matched against the dialect's
    /// routes and the gateway's paths.
    pub routed: String,
    /// What goes after the upstream's base, as the client encoded it; the
    /// access rules read this one (decoding it once themselves).
    pub forwarded: String,
}

/// Why a path is not proxied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    /// It holds a `.` or `..` segment, an encoded slash or a backslash.
    Ambiguous,
    /// The client spelled the mount itself encoded (`/%70ixyle/...`).
    MountEncoded,
}

/// The paths of a request whose raw path is `raw`, routed as `routed`, of
/// which `under_mount` is what lies below the tenant's mount.
pub fn of(raw: &str, routed: &str, under_mount: &str) -> Result<Paths, PathProblem> {
    let mount = &routed[..routed.len().saturating_sub(under_mount.len())];
    let raw_under = raw
        .strip_prefix(mount)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .ok_or(PathProblem::MountEncoded)?;
    if has_dot_segment(under_mount) || has_dot_segment(raw_under) || has_other_separator(raw_under)
    {
        return Err(PathProblem::Ambiguous);
    }
    let mut routed = merge_slashes(under_mount);
    if routed.is_empty() {
        routed.push('/');
    }
    Ok(Paths {
        routed,
        forwarded: merge_slashes(raw_under),
    })
}

fn merge_slashes(path: &str) -> String {
    let mut merged = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && merged.ends_with('/')) {
            merged.push(c);
        }
    }
    merged
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/')
        .map(|segment| segment.to_ascii_lowercase().replace("%2e", "."))
        .any(|segment| segment == "." || segment == "..")
}

/// An encoded slash, an encoded backslash or a backslash.
fn has_other_separator(raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(routed: &str, forwarded: &str) -> Result<Paths, PathProblem> {
        Ok(Paths {
            routed: routed.into(),
            forwarded: forwarded.into(),
        })
    }

    #[test]
    fn the_mount_is_stripped_and_slashes_merged() {
        assert_eq!(of("/t/a/b", "/t/a/b", "/a/b"), paths("/a/b", "/a/b"));
        assert_eq!(
            of("/t//a///b/", "/t//a///b/", "//a///b/"),
            paths("/a/b/", "/a/b/")
        );
        assert_eq!(of("/t", "/t", ""), paths("/", ""));
        // Host-mounted: nothing to strip.
        assert_eq!(of("/a", "/a", "/a"), paths("/a", "/a"));
        // The client's encoding goes on; the decision reads it decoded.
        assert_eq!(
            of("/t/p%75blic/a%20b", "/t/public/a b", "/public/a b"),
            paths("/public/a b", "/p%75blic/a%20b")
        );
        // Dots inside a segment are a name like any other.
        assert_eq!(
            of("/t/a..b/.x", "/t/a..b/.x", "/a..b/.x"),
            paths("/a..b/.x", "/a..b/.x")
        );
    }

    #[test]
    fn ambiguous_paths_and_an_encoded_mount_are_refused() {
        for (raw, routed, under) in [
            ("/t/a/../b", "/t/a/../b", "/a/../b"),
            ("/t/./b", "/t/./b", "/./b"),
            ("/t/a/%2e%2E/b", "/t/a/../b", "/a/../b"),
            ("/t/..", "/t/..", "/.."),
            ("/t/a/%2e%2e%2fb", "/t/a/..%2fb", "/a/..%2fb"),
            ("/t/admin%2Fx", "/t/admin%2Fx", "/admin%2Fx"),
            ("/t/admin%5cx", "/t/admin\\x", "/admin\\x"),
            ("/t/a\\b", "/t/a\\b", "/a\\b"),
        ] {
            assert_eq!(of(raw, routed, under), Err(PathProblem::Ambiguous), "{raw}");
        }
        assert_eq!(of("/%74/a", "/t/a", "/a"), Err(PathProblem::MountEncoded));
    }
}
