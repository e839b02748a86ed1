//! Route paths and their `{name}` parameters: what a dialect may write,
//! and the router pattern it becomes.

use std::collections::BTreeMap;

/// A literal URL path: `/`, then segments of letters, digits and `-._~`.
/// Nothing the router would read as a pattern (`{`, `}`, `*`).
pub fn is_plain_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
}

/// Checks a route path and gives the router's pattern for it: literal
/// segments as [`is_plain_path`] allows, and whole `{name}` segments for
/// names declared in `[params]`, which become `{name:regex}`.
pub fn route_pattern(path: &str, params: &BTreeMap<String, String>) -> Result<String, String> {
    let shape = || {
        format!(
            "`{path}` must start with one `/` and hold only letters, digits and `-._~/`, \
             or whole `{{name}}` segments declared in `[params]`"
        )
    };
    if !path.starts_with('/') || path.contains("//") {
        return Err(shape());
    }
    let mut pattern = String::new();
    let mut used: Vec<&str> = Vec::new();
    for segment in path[1..].split('/') {
        pattern.push('/');
        let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            if !is_plain_path(&format!("/{segment}")) {
                return Err(shape());
            }
            pattern.push_str(segment);
            continue;
        };
        if !is_param_name(name) {
            return Err(shape());
        }
        let regex = params
            .get(name)
            .ok_or_else(|| format!("`{{{name}}}` in `{path}` is not declared in `[params]`"))?;
        if used.contains(&name) {
            return Err(format!("`{{{name}}}` appears twice in `{path}`"));
        }
        used.push(name);
        pattern.push_str(&format!("{{{name}:{regex}}}"));
    }
    Ok(pattern)
}

fn is_param_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks the `[params]` table. A regex may use only a subset the gateway
/// can vouch for: it can never match `/` (a parameter stays within its
/// segment) nor unbalance the router's `{name:regex}` braces. It is then
/// compiled by the same engine as the router's (`regex-lite`).
pub fn check_params(params: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    for (name, regex) in params {
        let key = format!("params.{name}");
        if !is_param_name(name) {
            return Err((
                key,
                "a parameter name is letters, digits and `_`, not starting with a digit".into(),
            ));
        }
        check_param_regex(regex).map_err(|e| (key.clone(), e))?;
        regex_lite::Regex::new(&format!("^(?P<{name}>{regex})$"))
            .map_err(|e| (key, format!("`{regex}` is not a valid regex: {e}")))?;
    }
    Ok(())
}

fn check_param_regex(regex: &str) -> Result<(), String> {
    let refuse = |what: String| {
        Err(format!(
            "{what} in `{regex}`: a parameter regex may hold letters, digits, `-_~`, \
             classes `[...]` of those (and `.` inside a class), groups `(...)`/`(?:...)`, `|`, and `? * + {{m,n}}`"
        ))
    };
    if regex.is_empty() {
        return refuse("nothing".into());
    }
    let is_literal = |c: char| c.is_ascii_alphanumeric() || "-_~".contains(c);
    let mut chars = regex.chars().peekable();
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            c if is_literal(c) || "|?*+".contains(c) => {}
            '(' => {
                depth += 1;
                if chars.peek() == Some(&'?') {
                    chars.next();
                    if chars.next() != Some(':') {
                        return refuse("a group other than `(?:`".into());
                    }
                }
            }
            ')' => {
                depth = match depth.checked_sub(1) {
                    Some(d) => d,
                    None => return refuse("an unopened `)`".into()),
                };
            }
            '[' => {
                let mut class = Vec::new();
                loop {
                    match chars.next() {
                        Some(']') if !class.is_empty() => break,
                        Some(c) if is_literal(c) || c == '.' => class.push(c),
                        Some(c) => return refuse(format!("`{c}` in a class")),
                        None => return refuse("an unclosed `[`".into()),
                    }
                }
                // `[.-9]` would hold `/`: a range runs between letters or digits only.
                let bad_range = class.windows(3).find(|w| {
                    w[1] == '-' && !(w[0].is_ascii_alphanumeric() && w[2].is_ascii_alphanumeric())
                });
                if let Some(w) = bad_range {
                    return refuse(format!("the range `{}-{}`", w[0], w[2]));
                }
            }
            '{' => {
                let mut digits = false;
                loop {
                    match chars.next() {
                        Some('}') if digits => break,
                        Some(c) if c.is_ascii_digit() => digits = true,
                        Some(',') => {}
                        _ => return refuse("a `{` that is not a `{m,n}` repetition".into()),
                    }
                }
            }
            c => return refuse(format!("`{c}`")),
        }
    }
    if depth != 0 {
        return refuse("an unclosed `(`".into());
    }
    Ok(())
}
