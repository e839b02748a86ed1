//! A tenant's access rules (`[[access]]`): which original requests pass
//! without a credential, which need one (maybe with a role), which are
//! refused. Compiled once from the tenant file; forward-auth and the
//! upstream proxy ask them with the original method and path. Pure logic:
//! no HTTP types.
//!
//! Rules are tried in order and the first whose globs and methods match
//! decides; when none does, a credential is needed. A glob is a path
//! starting with `/` whose segments are literal text, `*` (any one
//! segment; inside a segment, any run of characters: `*.png`) or `**` (any
//! number of segments, none included: `/public/**` matches `/public`).
//!
//! A path that could be read as two paths is refused, never guessed at
//! ([`RequestPath::parse`]), and spelling can only make a request stricter:
//! a `public` rule matches the exact spelling, every other rule ignores
//! ASCII case in paths and methods.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use serde::Deserialize;

/// One `[[access]]` table, as written in a tenant file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Globs on the original path.
    pub paths: Vec<String>,
    /// The methods the rule is for; every method when absent.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub policy: Policy,
    /// With `authenticated`: the principal needs one of them.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// What a rule asks of the requests it matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Policy {
    /// No credential needed.
    Public,
    /// A valid credential.
    #[default]
    Authenticated,
    /// Refused, whatever is presented.
    Deny,
}

impl TryFrom<String> for Policy {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "public" => Ok(Self::Public),
            "authenticated" => Ok(Self::Authenticated),
            "deny" => Ok(Self::Deny),
            _ => Err(format!(
                "unknown policy {name:?}: use \"public\", \"authenticated\" or \"deny\""
            )),
        }
    }
}

/// What the rules say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Allowed without a credential.
    Public,
    /// Needs a valid credential; with `roles`, its holder needs one of them.
    Authenticated { roles: &'a [String] },
    /// Refused: a `deny` rule, or a method or path that cannot be read one way only.
    Deny,
}

/// A tenant's compiled rules, in file order.
#[derive(Debug, Default)]
pub struct Rules(Vec<Rule>);

#[derive(Debug)]
struct Rule {
    globs: Vec<Glob>,
    /// Upper case; `None`: every method.
    methods: Option<Vec<String>>,
    policy: Policy,
    roles: Vec<String>,
}

impl Rules {
    /// Compiles `specs`; an error names its key (`access[0].paths[1]`) and
    /// what is wrong with it.
    pub fn compile(specs: &[RuleSpec]) -> Result<Self, (String, String)> {
        specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                Rule::compile(spec).map_err(|(key, e)| (format!("access[{i}]{key}"), e))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The decision for `method` on `path` (the path under the mount; a
    /// query after `?` is ignored). Without rules every request needs a
    /// credential, and the path is not read.
    pub fn decide(&self, method: &str, path: &str) -> Decision<'_> {
        if self.0.is_empty() {
            return Decision::Authenticated { roles: &[] };
        }
        if !is_method(method) {
            return Decision::Deny;
        }
        let Ok(path) = RequestPath::parse(path) else {
            return Decision::Deny;
        };
        let rule = self.0.iter().find(|rule| rule.matches(method, &path));
        match rule {
            None => Decision::Authenticated { roles: &[] },
            Some(rule) => match rule.policy {
                Policy::Public => Decision::Public,
                Policy::Authenticated => Decision::Authenticated { roles: &rule.roles },
                Policy::Deny => Decision::Deny,
            },
        }
    }
}

impl Rule {
    fn compile(spec: &RuleSpec) -> Result<Self, (String, String)> {
        if spec.paths.is_empty() {
            return Err((".paths".into(), "give at least one path glob".into()));
        }
        let globs = spec
            .paths
            .iter()
            .enumerate()
            .map(|(j, glob)| Glob::compile(glob).map_err(|e| (format!(".paths[{j}]"), e)))
            .collect::<Result<_, _>>()?;
        let methods = match &spec.methods {
            None => None,
            Some(methods) if methods.is_empty() => {
                return Err((
                    ".methods".into(),
                    "an empty list matches nothing; leave `methods` out for every method".into(),
                ));
            }
            Some(methods) => {
                for (j, method) in methods.iter().enumerate() {
                    check_method(method).map_err(|e| (format!(".methods[{j}]"), e))?;
                }
                Some(methods.clone())
            }
        };
        if !spec.roles.is_empty() && spec.policy != Policy::Authenticated {
            return Err((
                ".roles".into(),
                "roles go only with `policy = \"authenticated\"`".into(),
            ));
        }
        Ok(Self {
            globs,
            methods,
            policy: spec.policy,
            roles: spec.roles.clone(),
        })
    }

    fn matches(&self, method: &str, path: &RequestPath) -> bool {
        // Only a public rule is held to the exact spelling.
        let fold = self.policy != Policy::Public;
        let method_matches = self.methods.as_ref().is_none_or(|methods| {
            methods.iter().any(|m| match fold {
                true => m.eq_ignore_ascii_case(method),
                false => m == method,
            })
        });
        method_matches && self.globs.iter().any(|glob| glob.matches(path, fold))
    }
}

/// `GET`, `PROPFIND`, `M-SEARCH`: upper-case letters, `-` and `_`.
fn check_method(method: &str) -> Result<(), String> {
    let well_formed = method.starts_with(|c: char| c.is_ascii_uppercase())
        && method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
    match well_formed {
        true => Ok(()),
        false => Err(format!(
            "{method:?} is not a method: write it in upper case, like \"GET\""
        )),
    }
}

/// An RFC 9110 method: a non-empty token.
fn is_method(method: &str) -> bool {
    !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// One segment of a glob.
#[derive(Debug)]
enum Part {
    /// `**`: any number of segments, none included.
    AnyDepth,
    /// Text, maybe with `*` standing for any run of characters.
    Segment(String),
}

#[derive(Debug)]
struct Glob(Vec<Part>);

impl Glob {
    fn compile(glob: &str) -> Result<Self, String> {
        let Some(rest) = glob.strip_prefix('/') else {
            return Err(format!("{glob:?} must start with `/`"));
        };
        if rest.is_empty() {
            return Ok(Self(Vec::new()));
        }
        let mut parts = Vec::new();
        for segment in rest.split('/') {
            let problem = if segment.is_empty() {
                Some("has an empty segment (`//` or a trailing `/`)")
            } else if segment == "." || segment == ".." {
                Some("has a `.` or `..` segment")
            } else if segment.contains("**") && segment != "**" {
                Some("has `**` inside a segment: `**` must stand alone between slashes (`/a/**`)")
            } else if segment.contains(['%', '?', '#', ';', '\\']) {
                Some("holds `%`, `?`, `#`, `;` or `\\`: write the path decoded, without a query")
            } else if segment.contains(char::is_control) {
                Some("holds a control character")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(format!("{glob:?} {problem}"));
            }
            parts.push(match segment {
                "**" => Part::AnyDepth,
                _ => Part::Segment(segment.to_owned()),
            });
        }
        Ok(Self(parts))
    }

    /// Whether `path` matches, ignoring ASCII case when `fold`. `**` is to
    /// segments what `*` is to characters: one greedy pass that backs up to
    /// the last `**` (linear in the path for each `**`, never exponential).
    fn matches(&self, path: &RequestPath, fold: bool) -> bool {
        let (parts, segments) = (&self.0, &path.0);
        let (mut p, mut s) = (0, 0);
        let mut resume: Option<(usize, usize)> = None;
        while s < segments.len() {
            match parts.get(p) {
                Some(Part::AnyDepth) => {
                    resume = Some((p, s));
                    p += 1;
                }
                Some(Part::Segment(pattern)) if wildcard(pattern, &segments[s], fold) => {
                    p += 1;
                    s += 1;
                }
                _ => match resume {
                    // Let the last `**` take one more segment.
                    Some((star, taken)) => {
                        resume = Some((star, taken + 1));
                        p = star + 1;
                        s = taken + 1;
                    }
                    None => return false,
                },
            }
        }
        parts[p..].iter().all(|part| matches!(part, Part::AnyDepth))
    }
}

/// Whether `text` matches `pattern`, where `*` is any run of characters.
fn wildcard(pattern: &str, text: &str, fold: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                resume = Some((p, t));
                p += 1;
            }
            Some(&c) if eq(c, text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match resume {
                Some((star, taken)) => {
                    resume = Some((star, taken + 1));
                    p = star + 1;
                    t = taken + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A request path as rules see it: its segments, percent-decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestPath<'a>(Vec<Cow<'a, str>>);

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmbiguousPath;

impl<'a> RequestPath<'a> {
    /// Reads `raw` (what the client sent, maybe with a query, which is
    /// dropped). Percent-encoding is decoded once (RFC 3986 §2.1: `%61` is
    /// `a`) and one trailing `/` is ignored (`/a/` is `/a`). Dot segments
    /// are not resolved but refused, as is whatever servers read in more
    /// than one way, so that the rules and the upstream always see one
    /// path: a `.` or `..` segment, encoded or not (`/public/%2e%2e/admin`);
    /// an empty segment (`//`); an encoded `/`, an encoded `%` (a server
    /// that decodes twice reads another path), `\`, `;` (path parameters,
    /// which some servers drop: `/public/..;/admin`), `#`, an encoded `?`
    /// (`/public%3F/admin`: decoded, it would end the path), a control
    /// character, an escape that is not one, or bytes that are not UTF-8.
    pub fn parse(raw: &'a str) -> Result<Self, AmbiguousPath> {
        let path = raw.split_once('?').map_or(raw, |(path, _)| path);
        let rest = path.strip_prefix('/').ok_or(AmbiguousPath)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Ok(Self(Vec::new()));
        }
        rest.split('/')
            .map(decode_segment)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

fn decode_segment(raw: &str) -> Result<Cow<'_, str>, AmbiguousPath> {
    let segment = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| AmbiguousPath)?;
    // `%` left after decoding is `%25` or an escape that is not one; a `?`
    // is `%3F`, which a server reading the path decoded takes for a query.
    let ambiguous = segment.is_empty()
        || segment == "."
        || segment == ".."
        || segment.contains(['/', '%', '\\', ';', '#', '?'])
        || segment.contains(char::is_control);
    match ambiguous {
        true => Err(AmbiguousPath),
        false => Ok(segment),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml_rules: &str) -> Rules {
        #[derive(Deserialize)]
        struct File {
            access: Vec<RuleSpec>,
        }
        let file: File = toml::from_str(toml_rules).unwrap();
        Rules::compile(&file.access).unwrap()
    }

    fn compile_error(toml_rules: &str) -> (String, String) {
        #[derive(Deserialize)]
        struct File {
            access: Vec<RuleSpec>,
        }
        let file: File = toml::from_str(toml_rules).unwrap();
        Rules::compile(&file.access).unwrap_err()
    }

    fn glob_matches(glob: &str, path: &str) -> bool {
        let path = RequestPath::parse(path).unwrap();
        Glob::compile(glob).unwrap().matches(&path, false)
    }

    const AUTHENTICATED: Decision<'static> = Decision::Authenticated { roles: &[] };

    #[test]
    fn a_double_star_matches_any_depth_and_the_path_itself() {
        for path in ["/public", "/public/", "/public/a", "/public/a/b/c"] {
            assert!(glob_matches("/public/**", path), "{path}");
        }
        for path in ["/", "/publicity", "/x/public", "/pub"] {
            assert!(!glob_matches("/public/**", path), "{path}");
        }
        assert!(glob_matches("/**", "/"));
        assert!(glob_matches("/**", "/a/b"));
        assert!(glob_matches("/", "/"));
        assert!(!glob_matches("/", "/a"));
        assert!(glob_matches("/a/**/z", "/a/z"));
        assert!(glob_matches("/a/**/z", "/a/b/c/z"));
        assert!(!glob_matches("/a/**/z", "/a/b/c/zz"));
        assert!(glob_matches("/**/edit", "/docs/1/edit"));
        assert!(glob_matches("/a/**/b/**/c", "/a/x/b/y/b/c"));
        assert!(!glob_matches("/a/**/b/**/c", "/a/x/c/b"));
    }

    #[test]
    fn a_star_is_one_segment_or_a_run_inside_one() {
        assert!(glob_matches("/users/*", "/users/42"));
        assert!(!glob_matches("/users/*", "/users"));
        assert!(!glob_matches("/users/*", "/users/42/posts"));
        assert!(glob_matches("/users/*/posts", "/users/42/posts"));
        assert!(glob_matches("/img/*.png", "/img/cat.png"));
        assert!(!glob_matches("/img/*.png", "/img/cat.png.exe"));
        assert!(glob_matches("/v*/status", "/v2/status"));
        assert!(glob_matches("/a*b*c", "/aXbYbc"));
        assert!(!glob_matches("/a*b*c", "/aXbYb"));
        assert!(glob_matches("/caf\u{e9}/*", "/caf%C3%A9/menu"));
    }

    #[test]
    fn many_double_stars_on_a_long_path_stay_fast() {
        let glob = format!("/{}x", "**/a/".repeat(20));
        let path = format!("/{}", "a/".repeat(5000));
        let started = std::time::Instant::now();
        assert!(!glob_matches(&glob, &path));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn the_first_matching_rule_decides_and_no_match_needs_a_credential() {
        let rules = rules(
            r#"
            [[access]]
            paths = ["/public/private/**"]
            [[access]]
            paths = ["/health", "/public/**"]
            methods = ["GET", "HEAD"]
            policy = "public"
            [[access]]
            paths = ["/admin/**"]
            roles = ["admin", "ops"]
            [[access]]
            paths = ["/internal/**"]
            policy = "deny"
            "#,
        );
        assert_eq!(rules.0.len(), 4);
        assert_eq!(rules.decide("GET", "/health"), Decision::Public);
        assert_eq!(rules.decide("HEAD", "/public/a.css"), Decision::Public);
        assert_eq!(rules.decide("GET", "/public"), Decision::Public);
        assert_eq!(rules.decide("POST", "/public/form"), AUTHENTICATED);
        assert_eq!(rules.decide("GET", "/public/private/x"), AUTHENTICATED);
        let admin = ["admin".to_owned(), "ops".to_owned()];
        assert_eq!(
            rules.decide("DELETE", "/admin/users/1"),
            Decision::Authenticated { roles: &admin }
        );
        assert_eq!(rules.decide("GET", "/internal"), Decision::Deny);
        assert_eq!(rules.decide("GET", "/internal/metrics"), Decision::Deny);
        assert_eq!(rules.decide("GET", "/other"), AUTHENTICATED);
        assert_eq!(Rules::default().decide("GET", "/anything"), AUTHENTICATED);
    }

    #[test]
    fn the_query_never_takes_part() {
        let rules = rules("[[access]]\npaths = [\"/public/**\"]\npolicy = \"public\"");
        assert_eq!(rules.decide("GET", "/public/a?x=/admin"), Decision::Public);
        assert_eq!(rules.decide("GET", "/public?x"), Decision::Public);
        assert_eq!(rules.decide("GET", "/admin?/public/a"), AUTHENTICATED);
    }

    #[test]
    fn path_tricks_never_reach_a_public_rule() {
        let rules = rules(
            "[[access]]\npaths = [\"/public/**\"]\npolicy = \"public\"\n\
             [[access]]\npaths = [\"/admin/**\"]\npolicy = \"deny\"",
        );
        for refused in [
            "/public/../admin",
            "/public/./x",
            "/public/%2e%2e/admin",
            "/public/%2E%2E/admin",
            "/public/.%2e/admin",
            "/public/%2e",
            "/public//x",
            "//public",
            "/public%2Fx",
            "/public/%2fx",
            "/public/%252e%252e/admin",
            "/public/%zz",
            "/public/%",
            "/public/..;/admin",
            "/public/x;y",
            "/public/a\\..\\..\\admin",
            "/public/%5C..%5Cadmin",
            "/public/%00",
            "/public/%0d%0a",
            "/public/%ff",
            "/public/x#y",
            "public/x",
            "",
            "*",
            "/public//",
        ] {
            assert_eq!(rules.decide("GET", refused), Decision::Deny, "{refused:?}");
        }
        // Another spelling is another path, never a public one.
        for stricter in ["/PUBLIC", "/Public/x", "/publi%43/x"] {
            assert_eq!(rules.decide("GET", stricter), AUTHENTICATED, "{stricter:?}");
        }
        // ... but still a restricted one.
        for denied in ["/ADMIN", "/Admin/x", "/%61dmin/x", "/%41DMIN"] {
            assert_eq!(rules.decide("GET", denied), Decision::Deny, "{denied:?}");
        }
        // What decodes to plain text is that text.
        assert_eq!(rules.decide("GET", "/%70ublic/x"), Decision::Public);
        assert_eq!(rules.decide("GET", "/public/a%20b"), Decision::Public);
        assert_eq!(rules.decide("GET", "/public/"), Decision::Public);
    }

    #[test]
    fn methods_match_exactly_for_public_and_in_any_case_otherwise() {
        let rules = rules(
            "[[access]]\npaths = [\"/x\"]\nmethods = [\"DELETE\"]\npolicy = \"deny\"\n\
             [[access]]\npaths = [\"/x\"]\nmethods = [\"GET\"]\npolicy = \"public\"",
        );
        assert_eq!(rules.decide("DELETE", "/x"), Decision::Deny);
        assert_eq!(rules.decide("delete", "/x"), Decision::Deny);
        assert_eq!(rules.decide("GET", "/x"), Decision::Public);
        assert_eq!(rules.decide("get", "/x"), AUTHENTICATED);
        assert_eq!(rules.decide("PUT", "/x"), AUTHENTICATED);
        for bad in ["", "GET /", "G\u{e9}T", "GET\r\n"] {
            assert_eq!(rules.decide(bad, "/x"), Decision::Deny, "{bad:?}");
        }
    }

    #[test]
    fn bad_rules_name_their_key() {
        let cases = [
            ("paths = []", "access[0].paths", "at least one"),
            (
                "paths = [\"a**b\"]",
                "access[0].paths[0]",
                "must start with `/`",
            ),
            (
                "paths = [\"/ok\", \"/a**b\"]",
                "access[0].paths[1]",
                "`**` inside a segment",
            ),
            (
                "paths = [\"/a/**x\"]",
                "access[0].paths[0]",
                "`**` inside a segment",
            ),
            (
                "paths = [\"public\"]",
                "access[0].paths[0]",
                "must start with `/`",
            ),
            ("paths = [\"/a//b\"]", "access[0].paths[0]", "empty segment"),
            ("paths = [\"/a/\"]", "access[0].paths[0]", "empty segment"),
            ("paths = [\"/a/../b\"]", "access[0].paths[0]", "`..`"),
            (
                "paths = [\"/a?b=1\"]",
                "access[0].paths[0]",
                "without a query",
            ),
            ("paths = [\"/caf%C3%A9\"]", "access[0].paths[0]", "decoded"),
            (
                "paths = [\"/a\"]\nmethods = []",
                "access[0].methods",
                "empty list",
            ),
            (
                "paths = [\"/a\"]\nmethods = [\"get\"]",
                "access[0].methods[0]",
                "upper case",
            ),
            (
                "paths = [\"/a\"]\nmethods = [\"GET\", \"GET /\"]",
                "access[0].methods[1]",
                "not a method",
            ),
            (
                "paths = [\"/a\"]\nmethods = [\"\"]",
                "access[0].methods[0]",
                "not a method",
            ),
            (
                "paths = [\"/a\"]\npolicy = \"public\"\nroles = [\"admin\"]",
                "access[0].roles",
                "only with",
            ),
            (
                "paths = [\"/a\"]\npolicy = \"deny\"\nroles = [\"admin\"]",
                "access[0].roles",
                "only with",
            ),
        ];
        for (rule, key, problem) in cases {
            let (k, e) = compile_error(&format!("[[access]]\n{rule}"));
            assert_eq!(k, key, "{rule}: {e}");
            assert!(e.contains(problem), "{rule}: {e}");
        }
        let (key, _) = compile_error(
            "[[access]]\npaths = [\"/ok\"]\n[[access]]\npaths = [\"/also\"]\n[[access]]\npaths = [\"x\"]",
        );
        assert_eq!(key, "access[2].paths[0]");
        let unknown = toml::from_str::<RuleSpec>("paths = [\"/a\"]\npolicy = \"Public\"");
        assert!(
            unknown
                .unwrap_err()
                .message()
                .contains("unknown policy \"Public\"")
        );
    }
}
