//! JSON Schemas of what a dialect sends and reads, from its templates and
//! its route inputs.

use serde_json::Value;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, ArrayItems, KnownFormat, ObjectBuilder,
    Schema, SchemaFormat, SchemaType, Type,
};

use crate::dialect::decode::{AcceptedField, Input, InputField};
use crate::dialect::template::{Node, Placeholder};

/// The schema of every body a template can render.
pub fn of_template(node: &Node) -> Schema {
    match node {
        Node::Literal(value) => literal(value),
        Node::Typed(placeholder) => typed(*placeholder),
        // `{{null|string}}` has nothing to stringify: it renders `null`.
        Node::Stringified(Placeholder::Null) => typed(Placeholder::Null),
        Node::Stringified(placeholder) => text(nullable(*placeholder)),
        Node::Text(_) => text(false),
        Node::Object(fields) => {
            let mut object = ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
            for (name, field) in fields {
                object = object.property(name, of_template(field)).required(name);
            }
            object.into()
        }
        // `items`, not `prefixItems`: client generators and fuzzers read the
        // former; template arrays are short and alike (`["body", "{{field}}"]`).
        Node::Array(items) => {
            let mut array = ArrayBuilder::new()
                .min_items(Some(items.len()))
                .max_items(Some(items.len()));
            if !items.is_empty() {
                let item = any_of(items.iter().map(of_template).collect());
                array = array.items(ArrayItems::RefOrSchema(Box::new(item.into())));
            }
            array.into()
        }
        Node::EachField(_, item) => ArrayBuilder::new()
            .items(ArrayItems::RefOrSchema(Box::new(of_template(item).into())))
            .into(),
    }
}

/// A schema that accepts what any of `schemas` accepts (one when alone).
pub fn any_of(mut schemas: Vec<Schema>) -> Schema {
    let mut seen = Vec::new();
    schemas.retain(|s| {
        let text = serde_json::to_string(s).unwrap_or_default();
        let new = !seen.contains(&text);
        seen.push(text);
        new
    });
    if schemas.len() == 1 {
        return schemas.remove(0);
    }
    // Two failures may share one body shape: `anyOf`, not `oneOf`.
    let mut any = AnyOfBuilder::new();
    for schema in schemas {
        any = any.item(schema);
    }
    any.into()
}

/// The body a route reads: its inputs and the fields it accepts besides, as properties.
pub fn of_inputs(inputs: &[InputField], accepts: &[AcceptedField], strict: bool) -> Schema {
    let mut object = ObjectBuilder::new().schema_type(Type::Object);
    if strict {
        object =
            object.additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
    }
    for field in inputs {
        let property = match field.input {
            Input::Remember => ObjectBuilder::new().schema_type(Type::Boolean),
            Input::Email => ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email))),
            Input::Password => ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password))),
            Input::CompanyId | Input::Token => ObjectBuilder::new().schema_type(Type::String),
        };
        object = object.property(&field.wire, property);
        if field.required {
            object = object.required(&field.wire);
        }
    }
    for field in accepts {
        let property = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(field.pattern.as_ref().map(|p| p.source.clone()));
        object = object.property(&field.wire, property);
    }
    object.into()
}

fn literal(value: &Value) -> Schema {
    let kind = match value {
        Value::Null => Type::Null,
        Value::Bool(_) => Type::Boolean,
        Value::Number(n) if n.is_i64() || n.is_u64() => Type::Integer,
        Value::Number(_) => Type::Number,
        Value::String(_) => Type::String,
        // Literal arrays and tables are compiled into `Array`/`Object` nodes.
        Value::Array(_) | Value::Object(_) => return Schema::default(),
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .enum_values(Some([value.clone()]))
        .into()
}

fn typed(placeholder: Placeholder) -> Schema {
    let kind = match placeholder {
        Placeholder::Null => return ObjectBuilder::new().schema_type(Type::Null).into(),
        // Whatever JSON the client sent.
        Placeholder::Value => {
            return ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .into();
        }
        Placeholder::ExpiresIn | Placeholder::RefreshExpiresIn | Placeholder::RetryAfter => {
            Type::Integer
        }
        _ => Type::String,
    };
    let schema_type = if nullable(placeholder) {
        SchemaType::from_iter([kind, Type::Null])
    } else {
        SchemaType::new(kind)
    };
    ObjectBuilder::new().schema_type(schema_type).into()
}

fn text(nullable: bool) -> Schema {
    let schema_type = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new().schema_type(schema_type).into()
}

/// Values an answer may lack (a company login has no email; a failure
/// may name no field), rendered as `null`.
fn nullable(placeholder: Placeholder) -> bool {
    matches!(
        placeholder,
        Placeholder::Email
            | Placeholder::CompanyId
            | Placeholder::Role
            | Placeholder::Field
            | Placeholder::Expected
            | Placeholder::Pattern
            | Placeholder::Value
            | Placeholder::RetryAfter
            | Placeholder::RefreshToken
            | Placeholder::RefreshExpiresIn
            | Placeholder::ApiKey
            | Placeholder::Null
    )
}
