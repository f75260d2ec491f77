//! Replies as Bitbucket sends them: error bodies and the success shapes handlers return.

use super::*;

pub(super) fn not_found(message: &str) -> Response {
    crate::sim::error(Which::Bitbucket, StatusCode::NOT_FOUND, message)
}

pub(super) fn bad_request(message: &str) -> Response {
    crate::sim::error(Which::Bitbucket, StatusCode::BAD_REQUEST, message)
}

/// A validation error naming the field, as POST/PUT answer: `{message: "field: …", fields: {field: […]}}`.
pub(super) fn field_error(field: &str, message: &str) -> Response {
    let body = json!({
        "type": "error",
        "error": {"message": format!("{field}: {message}"), "fields": {field: [message]}}
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

pub(super) fn json_body(bytes: &Bytes) -> Result<Value, Response> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(bad_request("Bad request: the body must be a JSON object")),
        Err(e) => Err(bad_request(&format!("Bad request: malformed JSON ({e})"))),
    }
}

pub(super) fn ok(value: Value) -> Reply {
    Ok(axum::Json(value).into_response())
}

pub(super) fn created(value: Value) -> Reply {
    Ok((StatusCode::CREATED, axum::Json(value)).into_response())
}

pub(super) fn no_content() -> Reply {
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) fn found(location: String) -> Reply {
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}
