//! The people in the seed and the small JSON builders every area shares: links, users, rendered text.

use super::*;

/// A `links` map: `{rel: {href}}`.
pub(super) fn links(pairs: &[(&str, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(rel, href)| (rel.to_string(), json!({ "href": href })))
            .collect(),
    )
}

/// The people in the seed: display name and nickname. Index 0 owns the sim's static token (account
/// `ann`); index 1 is the second OAuth account (`ben`).
pub(super) const PEOPLE: [(&str, &str); 6] = [
    ("Ann Dev", "anndev"),
    ("Ben Ortiz", "bortiz"),
    ("Chloe Martin", "cmartin"),
    ("Dmitri Ivanov", "divanov"),
    ("Eva Novak", "enovak"),
    ("Farid Haddad", "fhaddad"),
];
pub(super) const ME: usize = 0;
pub(super) const BEN: usize = 1;

pub(super) fn user_uuid(i: usize) -> String {
    if i == ME {
        "{d301aafa-d676-4ee0-88be-962be7417567}".into()
    } else {
        uuid(&format!("user-{i}"))
    }
}

pub(super) fn account_id(i: usize) -> String {
    if i == ME {
        "557058:c0b72ad0-1cb5-4018-9cdc-0cde8492c443".into()
    } else {
        let h = hex(&format!("account-{i}"), 32);
        format!(
            "712020:{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

/// A user as embedded in other objects.
pub(super) fn user(i: usize) -> Value {
    let (name, nickname) = PEOPLE[i];
    let uuid = user_uuid(i);
    let initials: String = name.split(' ').filter_map(|w| w.chars().next()).collect();
    json!({
        "display_name": name,
        "links": links(&[
            ("self", format!("{API}/users/{}", enc(&uuid))),
            ("avatar", format!(
                "https://secure.gravatar.com/avatar/{}?d=https%3A%2F%2Favatar-management--avatars.us-west-2.prod.public.atl-paas.net%2Finitials%2F{initials}-{}.png",
                hex(nickname, 32), i + 1
            )),
            ("html", format!("{WEB}/{}/", enc(&uuid))),
        ]),
        "type": "user",
        "uuid": uuid,
        "account_id": account_id(i),
        "nickname": nickname,
    })
}

/// The full user object of `GET /user`.
pub(super) fn full_user(i: usize) -> Value {
    let mut u = user(i);
    u["account_status"] = json!("active");
    u["has_2fa_enabled"] = Value::Null;
    u["is_staff"] = json!(false);
    u["created_on"] = json!("2019-03-04T10:11:12.123456+00:00");
    u
}

pub(super) fn email(i: usize) -> String {
    format!("{} <{}@acme.example>", PEOPLE[i].0, PEOPLE[i].1)
}

/// A person named by `{uuid}` or `account_id`, as reviewer and assignee bodies do.
pub(super) fn find_user(reference: &Value) -> Option<usize> {
    let by = |key: &str| reference.get(key).and_then(Value::as_str);
    (0..PEOPLE.len()).find(|&i| {
        by("uuid") == Some(user_uuid(i).as_str())
            || by("account_id") == Some(account_id(i).as_str())
    })
}

/// `{type: rendered, raw, markup, html}`: Bitbucket sends every text twice.
pub(super) fn rendered(raw: &str) -> Value {
    let escaped = raw
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let html: String = escaped
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", p.trim().replace('\n', "<br>\n")))
        .collect::<Vec<_>>()
        .join("\n");
    json!({ "type": "rendered", "raw": raw, "markup": "markdown", "html": html })
}
