//! The simulated providers behave like the real ones where a user of the sandbox would notice: what a
//! connected account does is done by that account, at today's time; seeded data is recent; links go to
//! bitbucket.org and app.buddy.works; a reviewer who has not voted is no voter; and the consent pages
//! are the provider's, not devgate's. Everything is seen through devgate, as an agent sees it.

use crate::common::*;
use chrono::{DateTime, Duration as Span, Utc};
use devgate::sim::Sim;
use serde_json::{Value, json};

/// A time a tool returned, as UTC.
fn time(value: &Value) -> DateTime<Utc> {
    let text = value.as_str().unwrap_or_else(|| panic!("a time: {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

/// Asserts `value` is a time between `from` and now (a second of slack either way).
fn just_now(what: &str, value: &Value, from: DateTime<Utc>) {
    let t = time(value);
    assert!(
        t >= from - Span::seconds(1) && t <= Utc::now() + Span::seconds(1),
        "{what} at {t}, not between {from} and now"
    );
}

/// Ben Ortiz (Bitbucket) and Nina Alvarez (Buddy), the second accounts, comment, approve and run
/// pipelines: each is done by them, now.
#[tokio::test(flavor = "multi_thread")]
async fn writes_are_made_by_the_connected_account_at_the_current_time() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(&sim, &[("bob", "ben", "nina")], "").await;
    let bob = &c.clients[0];
    let started = Utc::now();
    let me = ok(
        "bitbucket_get_current_user",
        &call(bob, "bitbucket_get_current_user", json!({})).await,
    );
    assert_eq!(me["name"], "Ben Ortiz");

    let pr = json!({"repo_slug": "api", "pull_request_id": 25});
    let approved = ok(
        "bitbucket_approve_pull_request",
        &call(bob, "bitbucket_approve_pull_request", pr.clone()).await,
    );
    assert_eq!(approved["user"], "Ben Ortiz", "{approved}");
    just_now("the approval", &approved["date"], started);

    let comment = ok(
        "bitbucket_add_pull_request_comment",
        &call(
            bob,
            "bitbucket_add_pull_request_comment",
            json!({"repo_slug": "api", "pull_request_id": 25, "text": "Looks good to me."}),
        )
        .await,
    );
    just_now("the comment", &comment["created_on"], started);
    let comments = ok(
        "bitbucket_list_pull_request_comments",
        &call(bob, "bitbucket_list_pull_request_comments", pr.clone()).await,
    );
    let mine = comments["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == comment["id"])
        .unwrap_or_else(|| panic!("the new comment in {comments}"));
    assert_eq!(mine["author"], "Ben Ortiz", "{mine}");

    let run = ok(
        "bitbucket_run_pipeline",
        &call(
            bob,
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "main"}),
        )
        .await,
    );
    let pipeline = ok(
        "bitbucket_get_pipeline",
        &call(
            bob,
            "bitbucket_get_pipeline",
            json!({"repo_slug": "api", "pipeline_uuid": run["uuid"]}),
        )
        .await,
    );
    assert_eq!(pipeline["creator"], "Ben Ortiz", "{pipeline}");
    just_now("the pipeline run", &pipeline["created_on"], started);

    let nina = ok(
        "buddy_get_user",
        &call(bob, "buddy_get_user", json!({})).await,
    );
    assert_eq!(nina["name"], "Nina Alvarez");
    let buddy_run = ok(
        "buddy_run_pipeline",
        &call(
            bob,
            "buddy_run_pipeline",
            json!({"project": "web", "pipeline": "nightly-e2e", "branch": "main"}),
        )
        .await,
    );
    let execution = ok(
        "buddy_get_execution",
        &call(
            bob,
            "buddy_get_execution",
            json!({"project": "web", "pipeline": "nightly-e2e", "execution_id": buddy_run["id"]}),
        )
        .await,
    );
    assert_eq!(execution["creator"], "Nina Alvarez", "{execution}");
    just_now("the Buddy run", &execution["start_date"], started);
}

/// The seed reads as recent (its newest changes within the last days, none in the future), its links go
/// to the real sites, and a reviewer who has not voted appears without a vote.
#[tokio::test(flavor = "multi_thread")]
async fn seeded_data_is_recent_links_go_to_the_real_sites_and_votes_are_real() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    let (client, _stderr) = stdio(&config).await;
    let now = Utc::now();

    let prs = ok(
        "bitbucket_list_pull_requests",
        &call(
            &client,
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "fields": ["updated_on", "html=links.html.href"]}),
        )
        .await,
    );
    let items = prs["items"].as_array().unwrap();
    let newest = items.iter().map(|p| time(&p["updated_on"])).max().unwrap();
    assert!(
        newest <= now && newest > now - Span::days(3),
        "the newest PR change ({newest}) is within the last days before {now}"
    );
    for p in items {
        let html = p["html"].as_str().unwrap();
        assert!(
            html.starts_with("https://bitbucket.org/acme/api/pull-requests/"),
            "{html}"
        );
    }

    let runs = ok(
        "buddy_list_executions",
        &call(
            &client,
            "buddy_list_executions",
            json!({"project": "web", "pipeline": "1", "fields": ["start_date", "finish_date", "html_url"]}),
        )
        .await,
    );
    let items = runs["items"].as_array().unwrap();
    let newest = items.iter().map(|r| time(&r["start_date"])).max().unwrap();
    assert!(
        newest <= now && newest > now - Span::hours(2),
        "the newest run ({newest}) started in the last hours before {now}"
    );
    for r in items {
        if let Some(finish) = r.get("finish_date") {
            assert!(time(finish) <= now, "a run finished in the future: {r}");
        }
        let html = r["html_url"].as_str().unwrap();
        assert!(
            html.starts_with("https://app.buddy.works/acme/web/"),
            "{html}"
        );
    }

    // PR 25: reviewers Ann Dev (no vote yet) and Chloe Martin (approved).
    let pr = ok(
        "bitbucket_get_pull_request",
        &call(
            &client,
            "bitbucket_get_pull_request",
            json!({"repo_slug": "api", "pull_request_id": 25}),
        )
        .await,
    );
    assert!(
        pr["url"]
            .as_str()
            .unwrap()
            .starts_with("https://bitbucket.org/")
    );
    let participants = pr["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("{pr}"));
    let of = |name: &str| {
        participants
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {pr}"))
    };
    assert_eq!(of("Chloe Martin")["vote"], "approved");
    assert!(of("Ann Dev").get("vote").is_none(), "{pr}");
    let raw: Value = reqwest::Client::new()
        .get(format!(
            "{}/repositories/acme/api/pullrequests/25",
            sim.bitbucket_url
        ))
        .bearer_auth(devgate::sim::BITBUCKET_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ann = raw["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user"]["display_name"] == "Ann Dev")
        .unwrap();
    assert_eq!(
        (
            &ann["role"],
            &ann["approved"],
            &ann["state"],
            &ann["participated_on"]
        ),
        (
            &json!("REVIEWER"),
            &json!(false),
            &Value::Null,
            &Value::Null
        ),
        "a reviewer who has not acted has not participated: {ann}"
    );
    client.cancel().await.unwrap();
}

/// The provider's consent page, reached through devgate's connect page, is the provider's: its name and
/// colours, devgate named as the application asking, the permissions in the provider's words, and
/// where the answer goes back to; nothing of devgate's own page look.
#[tokio::test(flavor = "multi_thread")]
async fn consent_pages_look_like_the_providers_not_like_devgate() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let key = create_api_key(&setup, "dana");
    let gateway = oauth_http(&setup, &[]).await;
    let client = http_client_with_key(&gateway.url, &key).await;
    let back_to = setup.public_url().trim_start_matches("http://").to_string();
    for (tool, brand, asks, permission) in [
        (
            "bitbucket_get_current_user",
            "Bitbucket",
            "is requesting access to your Bitbucket account",
            "Read and modify your pull requests",
        ),
        (
            "buddy_get_user",
            "Buddy.Works",
            "wants to access your Buddy.Works account",
            "View pipelines, their runs and logs",
        ),
    ] {
        let needs = call(&client, tool, json!({})).await;
        let browser = CookieClient::new();
        let mut walk = Walk::default();
        let authorize = start_connect(&browser, &link_in(&text(&needs)), &mut walk).await;
        let devgate_page = &walk.pages[0];
        let consent = browser.get(&authorize).await.text().await.unwrap();
        let title = consent
            .split_once("<title>")
            .and_then(|(_, rest)| rest.split_once("</title>"))
            .map(|(t, _)| t)
            .unwrap_or_else(|| panic!("a title: {consent}"));
        assert!(
            title.contains(&format!("| {brand}")) && !title.contains("devgate"),
            "{title}"
        );
        assert!(
            consent.contains(&format!("<header>{brand}</header>")) && consent.contains("<style>"),
            "{consent}"
        );
        assert!(
            consent.contains(&format!("<b>devgate</b> {asks}")),
            "{consent}"
        );
        assert!(consent.contains(permission), "{consent}");
        assert!(
            consent.contains(&format!("<b id=\"redirect-host\">{back_to}</b>")),
            "{consent}"
        );
        assert!(consent.contains("Simulated"), "says it is simulated");
        let style = |page: &str| {
            page.split_once("<style>")
                .and_then(|(_, rest)| rest.split_once("</style>"))
                .map(|(s, _)| s.to_string())
        };
        assert_ne!(style(&consent), style(devgate_page), "its own look");
        assert!(!consent.contains("the MCP gateway your agent uses"));
    }
    client.cancel().await.unwrap();
}
