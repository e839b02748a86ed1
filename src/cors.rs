//! Which browser origins may call a tenant's routes (CORS), as configured:
//! the tenant's `cors_origins`, else its dialect's `[cors] origins`, else
//! none. An origin is written as browsers send it in `Origin`:
//! `scheme://host[:port]`, or the whole list is exactly `["*"]`.
//! How the HTTP layer answers is in `http/cors.rs`.

/// The origins a tenant answers with CORS headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `["*"]`: any origin, answered `Access-Control-Allow-Origin: *`.
    Any,
    /// These origins, each answered with itself (compared ASCII
    /// case-insensitively).
    Listed(Vec<String>),
}

impl AllowedOrigins {
    /// Checks a configured list: `None` for an empty one (no CORS). A
    /// problem names the index of the entry at fault.
    pub fn parse(origins: &[String]) -> Result<Option<Self>, (usize, String)> {
        if origins.is_empty() {
            return Ok(None);
        }
        if let Some(star) = origins.iter().position(|o| o == "*") {
            if origins.len() > 1 {
                return Err((
                    star,
                    "`*` stands alone: `[\"*\"]` allows every origin, a list names each one".into(),
                ));
            }
            return Ok(Some(Self::Any));
        }
        for (i, origin) in origins.iter().enumerate() {
            check_origin(origin).map_err(|problem| {
                (
                    i,
                    format!("{origin:?} is not an origin (`scheme://host[:port]`): {problem}"),
                )
            })?;
            if origins[..i].iter().any(|o| o.eq_ignore_ascii_case(origin)) {
                return Err((i, format!("{origin:?} is repeated")));
            }
        }
        Ok(Some(Self::Listed(origins.to_vec())))
    }

    /// Whether a request's `Origin` value is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Listed(origins) => origins.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }

    /// For `polyauth check`: `*` or the origins, comma-separated.
    pub fn describe(&self) -> String {
        match self {
            Self::Any => "*".into(),
            Self::Listed(origins) => origins.join(", "),
        }
    }
}

/// An origin as a browser serializes it (RFC 6454 §6.2): a scheme, `://`,
/// a host (an ASCII name, an IPv4 address or a bracketed IPv6 one) and an
/// optional port that is not the scheme's default; nothing else.
fn check_origin(origin: &str) -> Result<(), String> {
    if origin.is_empty() {
        return Err("it is empty".into());
    }
    if !origin.is_ascii() {
        return Err(
            "it must be ASCII: write an international host name in its `xn--` form, as browsers send it"
                .into(),
        );
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Err("it has no scheme (`https://…`)".into());
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return Err(format!("`{scheme}` is not a scheme"));
    }
    if let Some(at) = authority.find(['/', '?', '#']) {
        return Err(format!(
            "it has a path, query or fragment (`{}`); an origin ends after the host and port",
            &authority[at..]
        ));
    }
    if authority.contains('@') {
        return Err("it holds user information (`user@`)".into());
    }
    let (host, port) = split_port(authority)?;
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            !host.is_empty()
                && !host.starts_with(['.', '-'])
                && !host.ends_with('.')
                && !host.contains("..")
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        }
    };
    if !host_ok {
        return Err(match host.is_empty() {
            true => "it has no host".into(),
            false => format!("`{host}` is not a host name or address"),
        });
    }
    if let Some(port) = port {
        let default = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        };
        if default == Some(port) {
            return Err(format!(
                "`:{port}` is the default port of `{scheme}`, which browsers leave out: write `{scheme}://{host}`"
            ));
        }
    }
    Ok(())
}

/// `host[:port]` → the host and the port, if any (1 to 65535).
fn split_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let colon = match authority.strip_prefix('[') {
        Some(_) => authority.find(']').and_then(|end| {
            let rest = &authority[end + 1..];
            rest.starts_with(':').then_some(end + 1)
        }),
        None => authority.rfind(':'),
    };
    let Some(colon) = colon else {
        return Ok((authority, None));
    };
    let digits = &authority[colon + 1..];
    let port = digits
        .parse::<u16>()
        .ok()
        .filter(|port| *port > 0 && digits.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("`{digits}` is not a port (1 to 65535)"))?;
    Ok((&authority[..colon], Some(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Option<AllowedOrigins>, (usize, String)> {
        let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        AllowedOrigins::parse(&list)
    }

    #[test]
    fn origins_as_browsers_send_them_are_accepted() {
        for origin in [
            "https://dashboard.example",
            "http://localhost:3000",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
            "https://[2001:db8::1]",
            "chrome-extension://abcdefghijklmnop",
            "capacitor://localhost",
            "https://xn--dashbrd-n4a.example",
            "https://Dashboard.Example",
        ] {
            assert_eq!(check_origin(origin), Ok(()), "{origin}");
        }
    }

    #[test]
    fn anything_else_is_refused_saying_why() {
        for (origin, why) in [
            ("", "empty"),
            ("dashboard.example", "scheme"),
            ("://dashboard.example", "scheme"),
            ("1http://a.example", "scheme"),
            ("https://", "no host"),
            ("https://dashboard.example/", "path"),
            ("https://dashboard.example/app", "path"),
            ("https://dashboard.example?x", "path"),
            ("https://dashboard.example#x", "path"),
            ("https://user:pw@a.example", "user"),
            ("https://dashbörd.example", "ASCII"),
            ("https://a.example:443", "default port"),
            ("http://a.example:80", "default port"),
            ("https://a.example:0", "port"),
            ("https://a.example:65536", "port"),
            ("https://a.example:", "port"),
            ("https://a.example:+80", "port"),
            ("https://a example", "host"),
            ("https://.example", "host"),
            ("https://a..example", "host"),
            ("http://[::1", "host"),
            ("http://[nope]:80", "host"),
            ("https://*.example", "host"),
        ] {
            let problem = check_origin(origin).expect_err(origin);
            assert!(problem.contains(why), "{origin}: {problem}");
        }
    }

    #[test]
    fn a_list_is_a_star_alone_or_distinct_origins() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&["*"]), Ok(Some(AllowedOrigins::Any)));
        assert!(
            parse(&["*", "https://a.example"]).is_err_and(|(i, p)| i == 0 && p.contains("alone"))
        );
        assert!(parse(&["https://a.example", "*"]).is_err_and(|(i, _)| i == 1));
        assert!(
            parse(&["https://a.example", "https://A.example"])
                .is_err_and(|(i, p)| i == 1 && p.contains("repeated"))
        );
        assert!(parse(&["https://a.example", "a.example"]).is_err_and(|(i, _)| i == 1));
    }

    #[test]
    fn a_listed_origin_matches_itself_in_any_case_and_nothing_else() {
        let Ok(Some(listed)) = parse(&["https://dashboard.example", "http://localhost:3000"])
        else {
            panic!("refused");
        };
        for origin in [
            "https://dashboard.example",
            "HTTPS://Dashboard.Example",
            "http://localhost:3000",
        ] {
            assert!(listed.allows(origin), "{origin}");
        }
        for origin in [
            "http://dashboard.example",
            "https://dashboard.example:8443",
            "https://dashboard.example.evil",
            "https://evil.dashboard.example",
            "http://localhost",
            "null",
            "",
        ] {
            assert!(!listed.allows(origin), "{origin}");
        }
        assert!(AllowedOrigins::Any.allows("null"));
    }
}
