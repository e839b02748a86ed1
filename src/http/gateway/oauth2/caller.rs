//! Who calls an OAuth endpoint: a client of the tenant (`client_secret_basic`
//! or `client_secret_post`), or for introspection the holder of an access
//! token or API key of the tenant.

use actix_web::http::header::{self, HeaderMap};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

use super::{Form, OAuthError};
use crate::dialect::TokenSource;
use crate::engine::{CredentialKind, EngineError};
use crate::http::state::{AppState, TenantContext};

/// A client's id and secret as the request gives them. Basic credentials
/// that change when form-decoded are also tried as sent: many clients do
/// not encode them. Not `Debug`: it holds secrets.
pub(super) struct ClientCredentials(Vec<(String, SecretString)>);

impl ClientCredentials {
    /// A client of the tenant, or `invalid_client`.
    pub(super) fn authenticate(
        &self,
        state: &AppState,
        context: &TenantContext,
    ) -> Result<(), OAuthError> {
        let engine = &state.engine;
        let known = self.0.iter().any(|(id, secret)| {
            engine
                .authenticate_client(&context.tenant, id, secret.expose_secret())
                .is_ok()
        });
        match known {
            true => Ok(()),
            false => Err(OAuthError::invalid_client(false)),
        }
    }
}

/// The client credentials the request authenticates with, if any:
/// `client_secret_basic` or `client_secret_post`, not both.
pub(super) fn client_credentials(
    headers: &HeaderMap,
    form: &Form,
) -> Result<Option<ClientCredentials>, OAuthError> {
    let basic = match authorization(headers)? {
        Some(Authorization::Basic(candidates)) => Some(candidates),
        _ => None,
    };
    match (basic, &form.client_secret) {
        (Some(_), Some(_)) => Err(OAuthError::InvalidRequest),
        (Some(candidates), None) => match &form.client_id {
            Some(named) if candidates.iter().all(|(id, _)| id != named) => {
                Err(OAuthError::invalid_client(false))
            }
            _ => Ok(Some(ClientCredentials(candidates))),
        },
        (None, Some(secret)) => match &form.client_id {
            Some(id) => Ok(Some(ClientCredentials(vec![(id.clone(), secret.clone())]))),
            None => Err(OAuthError::invalid_client(false)),
        },
        (None, None) => Ok(None),
    }
}

/// Who may introspect: a client of the tenant, or the holder of a valid
/// access token or API key of it. Every credential presented must be valid.
pub(super) async fn authenticate_caller(
    state: &AppState,
    context: &TenantContext,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(), OAuthError> {
    let mut presented = 0;
    if let Some(client) = client_credentials(headers, form)? {
        client.authenticate(state, context)?;
        presented += 1;
    }
    let mut tokens: Vec<(&str, CredentialKind)> = Vec::new();
    if let Some(Authorization::Bearer(token)) = authorization(headers)? {
        tokens.push((token, CredentialKind::AccessTokenOrApiKey));
    }
    // Credentials in the dialect's own headers (`x-api-key`, `token`, …).
    for credential in &context.dialect.verify {
        if matches!(credential.source, TokenSource::Header(_)) {
            let token = credential
                .presented_in(headers)
                .map_err(|_| OAuthError::invalid_client(true))?;
            tokens.extend(token.map(|token| (token, credential.kind)));
        }
    }
    for (token, kind) in tokens {
        match state
            .engine
            .verify(&context.tenant, token, kind, None)
            .await
        {
            Ok(_) => presented += 1,
            Err(EngineError::InvalidToken(_) | EngineError::MissingToken) => {
                return Err(OAuthError::invalid_client(true));
            }
            Err(error) => return Err(error.into()),
        }
    }
    match presented {
        0 => Err(OAuthError::invalid_client(false)),
        _ => Ok(()),
    }
}

/// An `Authorization` header the OAuth endpoints understand.
enum Authorization<'a> {
    /// `client_secret_basic`: the client id and secret, form-decoded, then
    /// as sent when that differs.
    Basic(Vec<(String, SecretString)>),
    Bearer(&'a str),
}

/// The request's `Authorization`, if it has one of a known scheme. Sent
/// twice, unreadable, or a Basic value that is not `id:secret`, it is
/// refused.
fn authorization(headers: &HeaderMap) -> Result<Option<Authorization<'_>>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let refused = || OAuthError::invalid_client(false);
    if values.next().is_some() {
        return Err(refused());
    }
    let value = value.to_str().map_err(|_| refused())?.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return match rest.is_empty() {
            true => Err(OAuthError::invalid_client(true)),
            false => Ok(Some(Authorization::Bearer(rest))),
        };
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = BASIC.decode(rest).map_err(|_| refused())?;
    let decoded = String::from_utf8(decoded).map_err(|_| refused())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(refused)?;
    let mut candidates = Vec::new();
    if let (Some(id), Some(secret)) = (form_decoded(id), form_decoded(secret)) {
        candidates.push((id, SecretString::from(secret)));
    }
    let unchanged = |(decoded_id, decoded_secret): &(String, SecretString)| {
        decoded_id == id && decoded_secret.expose_secret() == secret
    };
    if !candidates.first().is_some_and(unchanged) {
        candidates.push((id.to_owned(), SecretString::from(secret.to_owned())));
    }
    candidates.retain(|(id, _)| !id.is_empty());
    match candidates.is_empty() {
        true => Err(refused()),
        false => Ok(Some(Authorization::Basic(candidates))),
    }
}

/// Basic credentials, with or without their `=` padding.
const BASIC: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// One `application/x-www-form-urlencoded` value, decoded (`+` is a space);
/// `None` when it does not decode to UTF-8.
fn form_decoded(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use base64::Engine as _;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn basic(id_secret: &str) -> HeaderMap {
        let encoded = base64::engine::general_purpose::STANDARD.encode(id_secret);
        headers(&[("authorization", &format!("Basic {encoded}"))])
    }

    /// The (id, secret) pairs tried, in order.
    fn credentials(headers: &HeaderMap, form: &Form) -> Option<Vec<(String, String)>> {
        let client = client_credentials(headers, form).ok()??;
        let pairs = client.0.iter();
        Some(
            pairs
                .map(|(id, secret)| (id.clone(), secret.expose_secret().to_owned()))
                .collect(),
        )
    }

    fn pairs(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            pairs
                .iter()
                .map(|(id, secret)| ((*id).to_owned(), (*secret).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn basic_credentials_are_form_decoded_then_tried_as_sent() {
        let form = Form::default();
        let got = |id_secret: &str| credentials(&basic(id_secret), &form);
        assert_eq!(got("svc:s3cret"), pairs(&[("svc", "s3cret")]));
        assert_eq!(
            got("my%20svc:a%2Bb+c%3A"),
            pairs(&[("my svc", "a+b c:"), ("my%20svc", "a%2Bb+c%3A")])
        );
        // Only the first colon separates; what does not decode is taken as sent.
        assert_eq!(got("svc:a:b"), pairs(&[("svc", "a:b")]));
        assert_eq!(got("svc:%zz"), pairs(&[("svc", "%zz")]));
        for refused in ["no-colon", ":secret"] {
            assert!(client_credentials(&basic(refused), &form).is_err());
        }
        let unpadded = headers(&[("authorization", "Basic c3ZjOnM")]);
        assert_eq!(credentials(&unpadded, &form), pairs(&[("svc", "s")]));
    }

    #[test]
    fn one_client_authentication_at_a_time() {
        let post = Form {
            client_id: Some("svc".into()),
            client_secret: Some(SecretString::from("s3cret")),
            ..Form::default()
        };
        assert!(matches!(
            client_credentials(&basic("svc:s3cret"), &post),
            Err(OAuthError::InvalidRequest)
        ));
        assert_eq!(
            credentials(&HeaderMap::new(), &post),
            pairs(&[("svc", "s3cret")])
        );
        // A client id alone, next to Basic, must name the same client.
        let named = |id: &str| Form {
            client_id: Some(id.into()),
            ..Form::default()
        };
        assert!(credentials(&basic("svc:s"), &named("svc")).is_some());
        assert!(client_credentials(&basic("svc:s"), &named("other")).is_err());
        // A bearer token is not a client authentication.
        let bearer = headers(&[("authorization", "Bearer abc")]);
        assert_eq!(credentials(&bearer, &Form::default()), None);
    }
}
