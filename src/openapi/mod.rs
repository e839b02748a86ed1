//! One OpenAPI 3.1 document per dialect, built from the same compiled
//! dialect that drives the wire: routes, request encodings and schemas,
//! every answer with its status, schema and an example, security schemes.

mod schema;

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::server::Server;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    PathsBuilder, Required,
};

use crate::dialect::answer::ErrorAnswer;
use crate::dialect::decode::Encoding;
use crate::dialect::template::{Filled, Placeholder, TextShape, Values};
use crate::dialect::{Credential, Dialect, Route, TokenSource};
use crate::engine::MessageKey;
use crate::reserved::{JWKS as JWKS_PATH, VERIFY as VERIFY_PATH};
/// The admin listener at its default address, in committed documents.
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9090";

/// The document for `dialect`, with the health endpoints at `admin_url`
/// when given (a tenant's public copy leaves the admin listener out). It
/// names no server: a tenant serving it fills in its own URL.
pub fn document(dialect: &Dialect, admin_url: Option<&str>) -> OpenApi {
    let mut paths = PathsBuilder::new();
    let mut schemes = BTreeMap::new();
    let operation_ids = operation_ids(&dialect.routes);
    for (route, operation_id) in dialect.routes.iter().zip(operation_ids) {
        let mut operation = OperationBuilder::new()
            .operation_id(Some(operation_id))
            .summary(Some(route.operation.rules().summary))
            .tag(dialect.name.clone());
        if dialect.trailing_slash {
            operation = operation.description(Some(
                "Also answered with or without a trailing slash on the path.",
            ));
        }
        for parameter in path_parameters(route) {
            operation = operation.parameter(parameter);
        }
        if route.reads_body() {
            operation = operation.request_body(Some(request_body(route)));
        }
        if let Some(credential) = &route.token {
            if let Some((name, scheme)) = security_scheme(credential) {
                operation = operation
                    .security(SecurityRequirement::new(name.clone(), Vec::<String>::new()));
                schemes.insert(name, scheme);
            }
        }
        let mut answers = vec![success_answer(dialect, route)];
        answers.extend(dialect.error_answers(Some(route)).iter().map(Answer::from));
        for (status, response) in responses(answers) {
            operation = operation.response(status, response);
        }
        paths = paths.path(
            route.path.clone(),
            PathItem::new(method(&route.method), operation),
        );
    }

    // One operation, served for GET and POST; operation ids must differ.
    let get = verify_operation(dialect, &mut schemes);
    let mut post = get.clone();
    post.operation_id = Some("verify_post".into());
    paths = paths
        .path(VERIFY_PATH, PathItem::new(HttpMethod::Get, get))
        .path(VERIFY_PATH, PathItem::new(HttpMethod::Post, post))
        .path(JWKS_PATH, PathItem::new(HttpMethod::Get, jwks_operation()));
    for (path, operation) in oauth2_operations(dialect, &mut schemes) {
        paths = paths.path(path, PathItem::new(HttpMethod::Post, operation));
    }

    if let Some(admin_url) = admin_url {
        paths = admin_paths(paths, admin_url);
    }

    let mut components = ComponentsBuilder::new();
    for (name, scheme) in schemes {
        components = components.security_scheme(name, scheme);
    }
    let description = format!(
        "The `{}` dialect of polyauth{}. Every answer below is what the gateway sends, \
         byte for byte; errors are listed by status with the failures that produce them.",
        dialect.name,
        dialect
            .vendor_page
            .as_deref()
            .map(|page| format!(", following {page}"))
            .unwrap_or_default()
    );
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(dialect.title.clone())
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(description)),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// `/_polyauth/verify`, as its handler's annotation describes it, plus what
/// the dialect decides: the credentials its clients send, the company
/// header, the error bodies.
fn verify_operation(
    dialect: &Dialect,
    schemes: &mut BTreeMap<String, SecurityScheme>,
) -> utoipa::openapi::path::Operation {
    use crate::http::gateway::verify::__path_verify;
    let mut verify: OperationBuilder = <__path_verify as utoipa::Path>::operation().into();
    // Path macros leave tags to an `OpenApi` derive; this document sets them.
    verify = verify.operation_id(Some("verify")).tag("gateway");
    for credential in &dialect.verify {
        if let Some((name, scheme)) = security_scheme(credential) {
            verify = verify.security(SecurityRequirement::new(name.clone(), Vec::<String>::new()));
            schemes.insert(name, scheme);
        }
    }
    for (header, says) in [
        (
            "X-Forwarded-Method",
            "The original request's method (Traefik, Caddy).",
        ),
        (
            "X-Forwarded-Uri",
            "The original request's path and query (Traefik, Caddy).",
        ),
        (
            "X-Original-Method",
            "The original request's method (nginx).",
        ),
        (
            "X-Original-URI",
            "The original request's path and query (nginx `$request_uri`).",
        ),
    ] {
        verify = verify.parameter(
            ParameterBuilder::new()
                .name(header)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(says))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    if let Some(header) = &dialect.company_header {
        verify = verify.parameter(
            ParameterBuilder::new()
                .name(header)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "The company the caller acts for; the credential must belong to it.",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    let answers = dialect
        .error_answers(None)
        .iter()
        .map(Answer::from)
        .collect();
    for (status, response) in responses(answers) {
        verify = verify.response(status, response);
    }
    verify.build()
}

/// `/oauth2/introspect` and `/oauth2/revoke`, as their handlers'
/// annotations describe them, with the ways a caller may authenticate:
/// a client (Basic; `client_secret_post` is in the body), and for
/// introspection a bearer token or the dialect's own credential headers.
fn oauth2_operations(
    dialect: &Dialect,
    schemes: &mut BTreeMap<String, SecurityScheme>,
) -> Vec<(String, utoipa::openapi::path::Operation)> {
    use crate::http::gateway::oauth2::{__path_post_introspect, __path_post_revoke};
    use utoipa::Path;
    let basic = (
        "clientSecretBasic".to_owned(),
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
    );
    let bearer = security_scheme(&Credential {
        source: TokenSource::Bearer,
        kind: crate::engine::CredentialKind::AccessTokenOrApiKey,
    });
    let headers = dialect
        .verify
        .iter()
        .filter(|credential| matches!(credential.source, TokenSource::Header(_)))
        .filter_map(security_scheme);
    let introspect_by: Vec<_> = [basic.clone()]
        .into_iter()
        .chain(bearer)
        .chain(headers)
        .collect();
    let with = |mut operation: OperationBuilder, id: &str, by: &[(String, SecurityScheme)]| {
        operation = operation.operation_id(Some(id)).tag("gateway");
        for (name, _) in by {
            operation =
                operation.security(SecurityRequirement::new(name.clone(), Vec::<String>::new()));
        }
        operation
    };
    let introspect = with(
        __path_post_introspect::operation().into(),
        "oauth2_introspect",
        &introspect_by,
    );
    // Revocation needs no credential: none, or a client's.
    let revoke = with(
        OperationBuilder::from(__path_post_revoke::operation())
            .security(SecurityRequirement::default()),
        "oauth2_revoke",
        std::slice::from_ref(&basic),
    );
    schemes.extend(introspect_by);
    vec![
        (__path_post_introspect::path(), introspect.build()),
        (__path_post_revoke::path(), revoke.build()),
    ]
}

/// `/.well-known/jwks.json`, as its handler's annotation describes it: the
/// same for every dialect.
fn jwks_operation() -> utoipa::openapi::path::Operation {
    use crate::http::gateway::jwks::__path_get_jwks;
    OperationBuilder::from(<__path_get_jwks as utoipa::Path>::operation())
        .operation_id(Some("jwks"))
        .tag("gateway")
        .build()
}

/// The admin listener's endpoints, as their handlers' annotations describe
/// them, served on the admin address rather than the tenant's.
fn admin_paths(paths: PathsBuilder, admin_url: &str) -> PathsBuilder {
    use crate::http::admin::{__path_healthz, __path_readyz};
    let admin = Server::builder()
        .url(admin_url)
        .description(Some("The admin listener (`admin_listen`), never public."))
        .build();
    let mut paths = paths;
    for (path, operation) in [
        (
            <__path_healthz as utoipa::Path>::path(),
            <__path_healthz as utoipa::Path>::operation(),
        ),
        (
            <__path_readyz as utoipa::Path>::path(),
            <__path_readyz as utoipa::Path>::operation(),
        ),
    ] {
        let operation = OperationBuilder::from(operation).tag("admin");
        let item = utoipa::openapi::path::PathItemBuilder::new()
            .operation(HttpMethod::Get, operation)
            .servers(Some([admin.clone()]))
            .build();
        paths = paths.path(path, item);
    }
    paths
}

/// The document as committed: pretty JSON, one trailing newline.
pub fn to_json(dialect: &Dialect) -> String {
    let document = document(dialect, Some(DEFAULT_ADMIN_URL));
    let mut json = serde_json::to_string_pretty(&document).unwrap_or_default();
    json.push('\n');
    json
}

/// One documented answer: a status, maybe a body, its example.
#[derive(Clone)]
struct Answer {
    status: u16,
    label: String,
    headers: Vec<(String, TextShape)>,
    body: Option<Schema>,
    example: Option<Value>,
}

impl From<&ErrorAnswer<'_>> for Answer {
    fn from(answer: &ErrorAnswer<'_>) -> Self {
        let label = match answer.message_key {
            MessageKey::Detail(detail) => format!("{} ({})", answer.code.as_str(), detail.as_str()),
            MessageKey::Code(code) => code.as_str().to_owned(),
        };
        Self {
            status: answer.status,
            label,
            headers: answer
                .headers
                .iter()
                .map(|(name, shape)| ((*name).to_owned(), shape.clone()))
                .collect(),
            body: answer.body.map(schema::of_template),
            example: answer.example.body.clone(),
        }
    }
}

fn success_answer(dialect: &Dialect, route: &Route) -> Answer {
    let (status, headers, body) = route.success();
    let example = route.render_success(&sample_values(dialect)).body;
    Answer {
        status,
        label: "success".into(),
        headers: headers
            .into_iter()
            .map(|(name, shape)| (name.to_owned(), shape))
            .collect(),
        body: body.map(schema::of_template),
        example,
    }
}

/// Answers grouped by status: one response each, its body any of theirs.
fn responses(answers: Vec<Answer>) -> Vec<(String, utoipa::openapi::Response)> {
    let mut by_status: BTreeMap<u16, Vec<Answer>> = BTreeMap::new();
    for answer in answers {
        by_status.entry(answer.status).or_default().push(answer);
    }
    by_status
        .into_iter()
        .map(|(status, answers)| {
            let labels: Vec<&str> = answers.iter().map(|a| a.label.as_str()).collect();
            let mut response = ResponseBuilder::new().description(labels.join(", "));
            let mut headers: BTreeMap<&str, Vec<&TextShape>> = BTreeMap::new();
            for (name, shape) in answers.iter().flat_map(|a| &a.headers) {
                headers.entry(name).or_default().push(shape);
            }
            for (name, shapes) in headers {
                response = response.header(name, header_schema(&shapes));
            }
            let bodies: Vec<Schema> = answers.iter().filter_map(|a| a.body.clone()).collect();
            if !bodies.is_empty() {
                let example = answers.iter().find_map(|a| a.example.clone());
                response = response.content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(schema::any_of(bodies)))
                        .example(example)
                        .build(),
                );
            }
            (status.to_string(), response.build())
        })
        .collect()
}

/// A header's schema: a number, a fixed text, or any text.
fn header_schema(shapes: &[&TextShape]) -> utoipa::openapi::header::Header {
    let schema = match shapes {
        [TextShape::Number] => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1)),
        [TextShape::Literal(text)] => ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([text.clone()])),
        _ => ObjectBuilder::new().schema_type(Type::String),
    };
    HeaderBuilder::new().schema(Some(schema)).build()
}

fn request_body(route: &Route) -> utoipa::openapi::request_body::RequestBody {
    let body = schema::of_inputs(&route.inputs, &route.accepts, route.strict);
    let mut media_types: Vec<&str> = Vec::new();
    for encoding in &route.encodings {
        let media_type = match encoding {
            Encoding::Json | Encoding::JsonAny => "application/json",
            Encoding::Form => "application/x-www-form-urlencoded",
            Encoding::Multipart => "multipart/form-data",
        };
        if !media_types.contains(&media_type) {
            media_types.push(media_type);
        }
    }
    // A body-less request is answered (the documented 400), so `required` is
    // a hint. It is left out where several encodings are offered: generators
    // such as openapi-python-client 0.29 then emit code that does not import.
    let required = (media_types.len() == 1).then_some(Required::True);
    let mut request = RequestBodyBuilder::new().required(required);
    if route.encodings.contains(&Encoding::JsonAny) {
        request = request.description(Some(
            "A JSON object is read whatever the `Content-Type` says, or with none.",
        ));
    }
    for media_type in media_types {
        request = request.content(
            media_type,
            ContentBuilder::new().schema(Some(body.clone())).build(),
        );
    }
    request.build()
}

/// The route's path parameters, each with its segment regex.
fn path_parameters(route: &Route) -> Vec<utoipa::openapi::path::Parameter> {
    route
        .params()
        .into_iter()
        .map(|(name, regex)| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(format!("^(?:{regex})$"))),
                ))
                .build()
        })
        .collect()
}

/// The security scheme a credential is presented with (none for a body field).
fn security_scheme(credential: &Credential) -> Option<(String, SecurityScheme)> {
    match &credential.source {
        TokenSource::Bearer => Some((
            "bearer".into(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        )),
        TokenSource::Header(name) => Some((
            name.clone(),
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(name.clone()))),
        )),
        TokenSource::Field(_) => None,
    }
}

/// Operation ids: the operation's name, made unique by method and path
/// where a dialect offers one operation twice.
fn operation_ids(routes: &[Route]) -> Vec<String> {
    routes
        .iter()
        .map(|route| {
            let name = route.operation.as_str();
            let twice = routes
                .iter()
                .filter(|r| r.operation == route.operation)
                .count()
                > 1;
            if !twice {
                return name.to_owned();
            }
            let slug: String = route
                .path
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            format!(
                "{name}_{}{}",
                route.method.to_ascii_lowercase(),
                slug.trim_end_matches('_')
            )
        })
        .collect()
}

fn method(name: &str) -> HttpMethod {
    match name {
        "GET" => HttpMethod::Get,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        _ => HttpMethod::Post,
    }
}

/// Values a success example is rendered with: shaped like real ones.
fn sample_values(dialect: &Dialect) -> Values {
    let mut values = Values::default();
    values
        .text(Placeholder::AccessToken, "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl")
        .text(Placeholder::RefreshToken, "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJ0eXAiOiJyZWZyZXNoIn0.c2lnbmF0dXJl")
        .text(Placeholder::TokenType, "Bearer")
        .number(
            Placeholder::ExpiresIn,
            dialect.tokens.access_ttl.map_or(3600, |d| d.as_secs()),
        )
        .number(
            Placeholder::RefreshExpiresIn,
            dialect.tokens.refresh_ttl.map_or(86_400, |d| d.as_secs()),
        )
        .text(Placeholder::ApiKey, "pa_0HX2cV1q9dD0Vq8cC5w1o0nDqkqW6mD0S5M2m4b1e8Y")
        .text(Placeholder::Email, "user@example.com")
        .text(Placeholder::Subject, "5f0c7c2e-3b9e-4f61-9a56-3d2c1b0a9f8e")
        .text(Placeholder::CompanyId, "8b2f5a1e-7c3d-4e9f-a1b2-c3d4e5f6a7b8")
        .set(Placeholder::Role, Filled::Text("user".into()));
    values
}
