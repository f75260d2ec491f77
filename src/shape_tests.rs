//! Tests of `shape.rs`: projection, timestamps, defaults left out, cursors and caps.

use super::*;
use serde_json::json;

#[test]
fn reads_parse_only_what_a_projection_uses_and_project_the_same() {
    let body = json!({
        "size": 2, "next": "https://x/2.0/r?page=2",
        "values": [
            {"id": 1, "title": "Aé", "links": {"self": {"href": "h"}, "html": {"href": "w"}},
             "author": {"display_name": "Ann", "uuid": "{1}", "links": {"avatar": {"href": "a"}}},
             "reviewers": [{"display_name": "Bo", "uuid": "{2}", "nickname": "bo"}],
             "source": {"branch": {"name": "f"}, "repository": {"full_name": "a/b"}}, "n": 1.5},
            {"id": 2, "title": null, "author": null, "reviewers": [], "extra": [1, {"x": true}]}
        ]
    });
    let specs = fields(&[
        "id",
        "title|1",
        "author=author.display_name",
        "reviewers=reviewers[]{name=display_name}",
        "source=source.branch.name",
        "n",
    ]);
    let mut reads = Reads::default();
    reads.add_fields("values", &specs);
    reads.add_path("next");
    reads.add_path("values.0.id");
    let bytes = serde_json::to_vec(&body).unwrap();
    let parsed = reads.parse(&bytes).unwrap();
    assert_eq!(
        parsed,
        json!({"next": "https://x/2.0/r?page=2", "values": [
            {"id": 1, "title": "Aé", "author": {"display_name": "Ann"},
             "reviewers": [{"display_name": "Bo"}], "source": {"branch": {"name": "f"}}, "n": 1.5},
            {"id": 2, "title": null, "author": null, "reviewers": []}
        ]})
    );
    let project_all = |v: &Value| -> Vec<Value> {
        v["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| project(i, &specs))
            .collect()
    };
    assert_eq!(project_all(&parsed), project_all(&body));
    for bad in [
        &b"{\"values\": [1,"[..],
        b"{\"values\": [{\"id\": tru}]}",
        b"{\"links\": {\"a\": \"\\q\"}}",
        b"{\"links\": {\"a\": [1}, \"values\": []}",
        b"{} x",
    ] {
        assert!(
            reads.parse(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// A reply nested deeper than serde_json allows is refused, not followed down the stack.
#[test]
fn reads_refuse_a_reply_nested_too_deep() {
    let mut reads = Reads::default();
    reads.add_path("values.id");
    let deep = format!(
        "{{\"values\": {}1{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let error = reads.parse(deep.as_bytes()).unwrap_err();
    assert_eq!(error.what, "nested too deep");
}

/// JSON values with the keys `Reads` below look for, strings with escapes, control characters and
/// non-ASCII text, numbers of every kind, nested objects and arrays.
pub(super) fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "(?s:.){0,30}".prop_map(Value::String),
        "[a-z\"\\\\/{}\\[\\]]{0,30}".prop_map(Value::String),
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|\\+0[0-2]:00)"
            .prop_map(Value::String),
        Just(Value::from(0)),
        Just(Value::from("")),
    ];
    leaf.prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                "a|b|id|links|x_on|n_count|[a-z\"\\\\]{1,6}",
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Kept numbers and literals read without serde_json come out as serde_json reads them.
#[test]
fn kept_scalars_match_serde_json() {
    let mut reads = Reads::default();
    reads.add_path("n");
    for raw in [
        "0",
        "-0",
        "7",
        "-7",
        "123456789012345678",
        "-123456789012345678",
        "1234567890123456789",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "1.5",
        "-0.0",
        "1e3",
        "2E-2",
        "true",
        "false",
        "null",
    ] {
        let doc = format!(r#"{{"n": {raw}, "x": 1}}"#);
        let whole: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(
            reads.parse(doc.as_bytes()).unwrap(),
            json!({"n": whole["n"]}),
            "{raw}"
        );
    }
}

/// Strings of every length up to 40 with an escape, a raw control character or a closing quote at
/// every position (so at every offset of the 16- and 8-byte scans), kept and skipped: read as
/// serde_json reads them, refused where it refuses them.
#[test]
fn strings_are_scanned_alike_at_every_offset() {
    let mut kept = Reads::default();
    kept.add_path("k");
    let skipped = Reads::default();
    for len in 0..40 {
        for at in 0..=len {
            for special in [
                &b"\\\""[..],
                b"\\u00e9",
                b"\\n",
                b"\x01",
                b"\x1f",
                b"\\q",
                b"\"",
            ] {
                let mut text = vec![b'a'; len];
                text.splice(at..at, special.iter().copied());
                let mut doc = b"{\"k\": \"".to_vec();
                doc.extend(&text);
                doc.extend(b"\", \"z\": 1}");
                let whole = serde_json::from_slice::<Value>(&doc);
                let shown = String::from_utf8_lossy(&doc).into_owned();
                match &whole {
                    Ok(whole) => {
                        assert_eq!(
                            kept.parse(&doc).as_ref(),
                            Ok(&json!({"k": whole["k"]})),
                            "{shown}"
                        );
                        assert_eq!(skipped.parse(&doc), Ok(json!({})), "{shown}");
                    }
                    Err(_) => {
                        assert!(kept.parse(&doc).is_err(), "{shown}");
                        assert!(skipped.parse(&doc).is_err(), "{shown}");
                    }
                }
            }
        }
    }
}

/// What `Reads` keeps of a value, computed on the whole parsed value.
fn prune(value: &Value, reads: &Reads) -> Value {
    if reads.whole {
        return value.clone();
    }
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter_map(|(k, v)| {
                    reads
                        .kept(k.as_bytes())
                        .map(|(k, below)| (k.to_string(), prune(v, below)))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| prune(i, reads)).collect()),
        other => other.clone(),
    }
}

proptest::proptest! {
    /// Any JSON, compact or pretty, any set of read paths: the reply parsed keeping only what is
    /// read equals the whole reply parsed and then pruned; every prefix cut short is refused.
    #[test]
    fn reads_keep_what_a_whole_parse_keeps(
        value in json_value(),
        paths in proptest::collection::vec("(a|b|id|links|0)(\\.(a|b|id|links|0)){0,2}", 0..5),
        pretty: bool,
    ) {
        let mut reads = Reads::default();
        for path in &paths {
            reads.add_path(path);
        }
        let doc = serde_json::json!({"a": value, "b": [1, {"id": "x"}]});
        let bytes = if pretty {
            serde_json::to_vec_pretty(&doc).unwrap()
        } else {
            serde_json::to_vec(&doc).unwrap()
        };
        let whole: Value = serde_json::from_slice(&bytes).unwrap();
        proptest::prop_assert_eq!(reads.parse(&bytes).unwrap(), prune(&whole, &reads));
        for cut in (0..bytes.len()).step_by(1 + bytes.len() / 64) {
            proptest::prop_assert!(reads.parse(&bytes[..cut]).is_err(), "cut at {}", cut);
        }
    }
}

/// Field specs over the keys [`json_value`] makes: renames, dot paths, `[]`, sub-projections, cuts,
/// timestamps and counts; the ones `parse_fields` or the catalog (`named_twice`) refuses are dropped.
fn field_specs() -> impl proptest::strategy::Strategy<Value = Vec<Field>> {
    use proptest::prelude::*;
    let spec = "(o[0-3]=)?(a|b|id|links|x_on|n_count)(\\[\\])?(\\.(a|b|id|x_on|n_count)(\\[\\])?){0,2}(\\{(a|id|p=b\\.a),?(x_on|n_count)?\\})?(\\|[0-9])?";
    proptest::collection::vec(spec, 0..6).prop_filter_map("valid specs", |specs| {
        parse_fields(
            &specs
                .into_iter()
                .map(|s| s.replace(",}", "}"))
                .collect::<Vec<_>>(),
        )
        .ok()
        .filter(|fields| named_twice(fields).is_none())
    })
}

proptest::proptest! {
    /// Projecting while reading gives what projecting the pruned parse gives: for a tool's root object
    /// (a `null` reply stays `null`) and for each item of its list, whatever the reply and the fields.
    #[test]
    fn projecting_while_reading_equals_projecting_the_parse(
        value in json_value(),
        specs in field_specs(),
        pretty: bool,
    ) {
        let doc = serde_json::json!({"values": value.clone(), "next": "n"});
        for (body, list) in [(&value, None), (&doc, Some("values"))] {
            let bytes = if pretty {
                serde_json::to_vec_pretty(body).unwrap()
            } else {
                serde_json::to_vec(body).unwrap()
            };
            let mut reads = Reads::default();
            reads.project_at(list.unwrap_or_default(), &specs, list.is_some());
            reads.add_path("next");
            let fused = reads.parse(&bytes).unwrap();
            let pruned = reads.clone().without_projection().parse(&bytes).unwrap();
            match list {
                None if pruned.is_null() => proptest::prop_assert_eq!(fused, Value::Null),
                None => proptest::prop_assert_eq!(fused, project(&pruned, &specs)),
                Some(list) => {
                    let items = |v: &Value| v[list].as_array().cloned();
                    let projected = items(&pruned)
                        .map(|items| items.iter().map(|i| project(i, &specs)).collect::<Vec<_>>());
                    proptest::prop_assert_eq!(items(&fused), projected);
                    proptest::prop_assert_eq!(&fused["next"], &pruned["next"]);
                }
            }
            // (A bare number's prefix can be a whole number, so only the object is cut.)
            for cut in (0..bytes.len()).step_by(1 + bytes.len() / 32).filter(|_| list.is_some()) {
                proptest::prop_assert!(reads.parse(&bytes[..cut]).is_err(), "cut at {}", cut);
            }
        }
    }
}

fn fields(specs: &[&str]) -> Vec<Field> {
    parse_fields(&specs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

#[test]
fn projects_renames_maps_and_cuts() {
    let pr = json!({
        "id": 7, "title": "Fix", "description": "abcdefghij",
        "author": {"display_name": "Ann", "links": {"avatar": {"href": "x"}}},
        "reviewers": [{"display_name": "Bo", "uuid": "{1}"}, {"display_name": "Cy", "uuid": "{2}"}],
        "source": {"branch": {"name": "feat"}}, "closed_by": null,
    });
    let out = project(
        &pr,
        &fields(&[
            "id",
            "title",
            "description|4",
            "author=author.display_name",
            "reviewers=reviewers[]{name=display_name,uuid}",
            "source=source.branch.name",
            "closed_by",
            "missing.deep",
        ]),
    );
    assert_eq!(
        out,
        json!({"id": 7, "title": "Fix", "description": "abcd…", "author": "Ann",
               "reviewers": [{"name": "Bo", "uuid": "{1}"}, {"name": "Cy", "uuid": "{2}"}],
               "source": "feat"})
    );
}

#[test]
fn timestamps_come_out_in_utc_seconds_and_defaults_are_left_out() {
    let pr = json!({
        "updated_on": "2025-10-06T09:39:21.123456+00:00", "created_on": "2025-10-06T11:39:21+02:00",
        "create_date": "2016-03-29T08:05:30.33Z", "finish_date": "2025-10-17T10:30:18.123456789Z",
        "target": {"date": "2025-10-06T09:39:21Z"}, "closed_on": "soon", "title": "2025-10-06T09:39:21.5Z",
        "draft": false, "merged": true, "comment_count": 0, "task_count": 2, "exit_code": 0,
        "reviewers": [], "labels": {}, "votes": [{"approved": false, "name": "Bo"}],
    });
    let out = project(
        &pr,
        &fields(&[
            "updated_on",
            "created_on",
            "create_date",
            "finish_date",
            "date=target.date",
            "closed_on",
            "title",
            "draft",
            "merged",
            "comments=comment_count",
            "tasks=task_count",
            "exit_code",
            "reviewers",
            "labels",
            "votes=votes[]{approved,name}",
        ]),
    );
    assert_eq!(
        out,
        json!({"updated_on": "2025-10-06T09:39:21Z", "created_on": "2025-10-06T09:39:21Z",
               "create_date": "2016-03-29T08:05:30Z", "finish_date": "2025-10-17T10:30:18Z",
               "date": "2025-10-06T09:39:21Z", "closed_on": "soon", "title": "2025-10-06T09:39:21.5Z",
               "merged": true, "tasks": 2, "exit_code": 0, "votes": [{"name": "Bo"}]})
    );
}

/// The shortcut for timestamps already in UTC gives what chrono gives, for valid and invalid ones alike.
#[test]
fn utc_timestamps_read_without_chrono_match_chrono() {
    let chrono_way = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s).ok().map(|at| {
            at.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
    };
    for s in [
        "2025-10-06T09:39:21Z",
        "2025-10-06T09:39:21.123456+00:00",
        "2024-02-29T23:59:59.9Z",
        "2025-02-29T10:00:00Z",
        "2025-04-31T10:00:00Z",
        "2025-13-01T10:00:00Z",
        "2025-10-06T24:00:00Z",
        "2025-10-06T09:60:00Z",
        "2016-12-31T23:59:60Z",
        "2025-10-06T09:39:21.Z",
        "2025-10-06T09:39:21+00:00x",
        "2025-10-06t09:39:21z",
        "2025-10-06 09:39:21Z",
        "2025-10-06T09:39:21-00:00",
        "2025-10-06T09:39:21",
        "2025-10-0",
        "soon",
        "",
    ] {
        assert_eq!(utc_seconds(s), chrono_way(s), "{s}");
    }
    for year in [1900, 2000, 2024, 2025, 2100] {
        for month in 0..=13 {
            for day in 0..=32 {
                let s = format!("{year:04}-{month:02}-{day:02}T12:30:45.5+00:00");
                assert_eq!(utc_seconds(&s), chrono_way(&s), "{s}");
            }
        }
    }
}

#[test]
fn bad_specs_are_reported() {
    for bad in ["", "a=", "a{b", "a|x", "a..b", "a b"] {
        assert!(parse_fields(&[bad.to_string()]).is_err(), "{bad}");
    }
}

#[test]
fn cursors_round_trip_and_bind_to_tool_user_and_arguments() {
    let key = CursorKey::new([3; 32]);
    let args = |v: Value| v.as_object().unwrap().clone();
    let scope = |tool: &str, user: &str, a: Value| {
        CursorScope::new(tool, user, &args(a), &["cursor", "limit"])
    };
    let here = scope(
        "bitbucket_list_commits",
        "ann",
        json!({"repo_slug": "b", "q": {"x": 1, "a": [2]}, "limit": 5}),
    );
    let url = "/repositories/a/b/commits?page=xyz";
    let c = key.issue(&here, url);
    assert_eq!(key.open(&here, &c).unwrap(), url);
    // Same arguments in another order, a different page size, a cursor argument: the same scope.
    let reordered = scope(
        "bitbucket_list_commits",
        "ann",
        json!({"cursor": c, "limit": 9, "q": {"a": [2], "x": 1}, "repo_slug": "b"}),
    );
    assert_eq!(key.open(&reordered, &c).unwrap(), url);
    for other in [
        scope(
            "bitbucket_list_branches",
            "ann",
            json!({"repo_slug": "b", "q": {"x": 1, "a": [2]}}),
        ),
        scope(
            "bitbucket_list_commits",
            "bob",
            json!({"repo_slug": "b", "q": {"x": 1, "a": [2]}}),
        ),
        scope(
            "bitbucket_list_commits",
            "ann",
            json!({"repo_slug": "c", "q": {"x": 1, "a": [2]}}),
        ),
        scope("bitbucket_list_commits", "ann", json!({"repo_slug": "b"})),
    ] {
        assert_eq!(
            key.open(&other, &c),
            Err(CursorError::Mismatch),
            "{other:?}"
        );
    }
    assert_eq!(
        CursorKey::new([4; 32]).open(&here, &c),
        Err(CursorError::Mismatch)
    );
    // Every altered byte, and a forged URL under an old tag, is refused.
    let raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
    for i in 0..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 0x20;
        assert!(
            key.open(&here, &URL_SAFE_NO_PAD.encode(&bad)).is_err(),
            "byte {i}"
        );
    }
    let mut forged = raw[..1 + CURSOR_TAG_LEN].to_vec();
    forged.extend_from_slice(b"/repositories/a/b/pipelines");
    assert!(key.open(&here, &URL_SAFE_NO_PAD.encode(&forged)).is_err());
    for garbage in [
        "",
        "!!!",
        "AQ",
        &URL_SAFE_NO_PAD.encode(format!("x\n{url}")),
    ] {
        assert_eq!(
            key.open(&here, garbage),
            Err(CursorError::Malformed),
            "{garbage}"
        );
    }
    assert_eq!(format!("{key:?}"), "CursorKey { key: <redacted> }");
}
