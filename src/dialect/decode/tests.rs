//! Body decoding, one problem at a time.

use super::*;

fn login_fields() -> Vec<InputField> {
    vec![
        InputField {
            input: Input::Email,
            wire: "email".into(),
            required: true,
        },
        InputField {
            input: Input::Password,
            wire: "password".into(),
            required: true,
        },
        InputField {
            input: Input::Remember,
            wire: "permanent_login".into(),
            required: false,
        },
    ]
}

fn rules<'a>(
    encodings: &'a [Encoding],
    fields: &'a [InputField],
    accepts: &'a [AcceptedField],
    strict: bool,
) -> BodyRules<'a> {
    BodyRules {
        encodings,
        fields,
        accepts,
        strict,
    }
}

fn json(body: &str, strict: bool) -> Result<Inputs, Problem> {
    decode(
        rules(&[Encoding::Json], &login_fields(), &[], strict),
        Some("application/json"),
        body.as_bytes(),
    )
}

#[test]
fn reads_named_fields() {
    let inputs = json(
        r#"{"email":"a@b.c","password":"pw","permanent_login":true}"#,
        true,
    )
    .unwrap();
    assert_eq!(inputs.text(Input::Email), Some("a@b.c"));
    assert!(inputs.flag(Input::Remember));
}

#[test]
fn names_each_problem() {
    assert_eq!(json("", true).unwrap_err(), Problem::NoBody);
    assert_eq!(json("{", true).unwrap_err(), Problem::InvalidBody);
    assert_eq!(json("[1]", true).unwrap_err(), Problem::InvalidBody);
    assert_eq!(
        json(r#"{"email":"a"}"#, true).unwrap_err(),
        Problem::MissingFields(vec!["password".into()])
    );
    assert_eq!(
        json(r#"{"email":"a","password":"b","x":1,"y":"z"}"#, true).unwrap_err(),
        Problem::UnknownFields(vec![
            ("x".into(), Echo(Value::from(1))),
            ("y".into(), Echo(Value::from("z")))
        ])
    );
    assert!(json(r#"{"email":"a","password":"b","x":1}"#, false).is_ok());
    assert_eq!(
        json(r#"{"email":1,"password":"b"}"#, true).unwrap_err(),
        Problem::WrongType {
            field: "email".into(),
            expected: "string"
        }
    );
    let plain = decode(
        rules(&[Encoding::Json], &login_fields(), &[], true),
        Some("text/plain"),
        b"{}",
    );
    assert_eq!(plain.unwrap_err(), Problem::UnsupportedEncoding);
}

fn multipart(body: &str) -> Result<Inputs, Problem> {
    decode(
        rules(&[Encoding::Multipart], &login_fields(), &[], false),
        Some("multipart/form-data; boundary=XyZ"),
        body.replace('\n', "\r\n").as_bytes(),
    )
}

#[test]
fn reads_multipart_text_parts() {
    let inputs = multipart(
        "--XyZ\nContent-Disposition: form-data; name=\"email\"\n\na@b.c\n\
         --XyZ\nContent-Disposition: form-data; name=\"password\"\n\npw\n\
         --XyZ\nContent-Disposition: form-data; name=\"permanent_login\"\n\ntrue\n--XyZ--\n",
    )
    .unwrap();
    assert_eq!(inputs.text(Input::Email), Some("a@b.c"));
    assert_eq!(inputs.text(Input::Password), Some("pw"));
    assert!(inputs.flag(Input::Remember));
}

#[test]
fn refuses_file_parts_and_broken_multipart() {
    let file = multipart(
        "--XyZ\nContent-Disposition: form-data; name=\"email\"; filename=\"e.txt\"\n\
         Content-Type: text/plain\n\na@b.c\n--XyZ--\n",
    );
    assert_eq!(file.unwrap_err(), Problem::InvalidBody);
    let unterminated = multipart("--XyZ\nContent-Disposition: form-data; name=\"email\"\n\na@b.c");
    assert_eq!(unterminated.unwrap_err(), Problem::InvalidBody);
    assert_eq!(multipart("garbage").unwrap_err(), Problem::InvalidBody);
    let missing =
        multipart("--XyZ\nContent-Disposition: form-data; name=\"email\"\n\na@b.c\n--XyZ--\n");
    assert_eq!(
        missing.unwrap_err(),
        Problem::MissingFields(vec!["password".into()])
    );
    let no_boundary = decode(
        rules(&[Encoding::Multipart], &login_fields(), &[], false),
        Some("multipart/form-data"),
        b"--XyZ--",
    );
    assert_eq!(no_boundary.unwrap_err(), Problem::InvalidBody);
}

#[test]
fn accepted_fields_are_known_and_checked_against_their_pattern() {
    let accepts = [
        AcceptedField {
            wire: "grant_type".into(),
            pattern: Some(Pattern::compile("^password$").unwrap()),
        },
        AcceptedField {
            wire: "scope".into(),
            pattern: None,
        },
    ];
    let form = |body: &str| {
        decode(
            rules(&[Encoding::Form], &login_fields(), &accepts, true),
            Some("application/x-www-form-urlencoded"),
            body.as_bytes(),
        )
    };
    assert!(form("email=a&password=b&grant_type=password&scope=x+y").is_ok());
    // Empty is not sent, as FastAPI reads a form.
    assert!(form("email=a&password=b&grant_type=").is_ok());
    assert_eq!(
        form("email=a&password=b&grant_type=client_credentials").unwrap_err(),
        Problem::PatternMismatch {
            field: "grant_type".into(),
            pattern: "^password$".into(),
            value: Echo(Value::from("client_credentials")),
        }
    );
    // The whole value must match an anchored pattern.
    assert!(form("email=a&password=b&grant_type=passwords").is_err());
    assert_eq!(
        form("email=a&password=b&client_id=c").unwrap_err(),
        Problem::UnknownFields(vec![("client_id".into(), Echo(Value::from("c")))])
    );
    let json = decode(
        rules(&[Encoding::Json], &login_fields(), &accepts, true),
        Some("application/json"),
        br#"{"email":"a","password":"b","grant_type":1}"#,
    );
    assert_eq!(
        json.unwrap_err(),
        Problem::WrongType {
            field: "grant_type".into(),
            expected: "string"
        }
    );
}

#[test]
fn json_any_reads_a_json_object_labelled_multipart_and_multipart_as_multipart() {
    let encodings = [Encoding::Form, Encoding::Multipart, Encoding::JsonAny];
    let read = |content_type: &str, body: &str| {
        decode(
            rules(&encodings, &login_fields(), &[], false),
            Some(content_type),
            body.replace('\n', "\r\n").as_bytes(),
        )
    };
    let multipart = read(
        "multipart/form-data; boundary=XyZ",
        "--XyZ\nContent-Disposition: form-data; name=\"email\"\n\na@b.c\n\
         --XyZ\nContent-Disposition: form-data; name=\"password\"\n\npw\n--XyZ--\n",
    )
    .unwrap();
    assert_eq!(multipart.text(Input::Email), Some("a@b.c"));
    let json = read(
        "multipart/form-data; boundary=XyZ",
        r#"{"email":"j@b.c","password":"pw"}"#,
    )
    .unwrap();
    assert_eq!(json.text(Input::Email), Some("j@b.c"));
    let form = read(
        "application/x-www-form-urlencoded",
        "email=f%40b.c&password=pw",
    )
    .unwrap();
    assert_eq!(form.text(Input::Email), Some("f@b.c"));
}
