//! Connecting from a terminal and the page servers' Host and body checks.

use super::*;

type StdoutLines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// The connect link `devgate connect` prints (it serves the pages before printing it).
async fn printed_link(lines: &mut StdoutLines) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("/connect/") && line.contains("?ticket=") {
                return link_in(&line);
            }
        }
        panic!("devgate connect printed no link");
    })
    .await
    .unwrap()
}

/// `devgate connect` from a terminal serves the same pages (on `public_url`), with the same binding:
/// the callback in another browser is refused and the command keeps waiting; in the same browser it
/// connects and the command says so.
#[tokio::test(flavor = "multi_thread")]
async fn devgate_connect_from_a_terminal_binds_the_browser() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    setup.reserve_public_url();
    let start = || {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(["connect", "bitbucket", "--user", "carol", "--config"])
            .arg(&setup.config)
            .env("DEVGATE_LOG", "debug")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, v) in oauth_env() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        (child, lines)
    };
    // Another browser: refused, nothing connected, the command still waits.
    let (mut child, mut lines) = start();
    let link = printed_link(&mut lines).await;
    let mut walk = Walk::default();
    let authorize = start_connect(&CookieClient::new(), &link, &mut walk).await;
    let victim = CookieClient::new();
    finish_connect(&victim, &authorize, "ben", "allow", &mut walk).await;
    assert_eq!(walk.final_status, 403, "{}", walk.pages.last().unwrap());
    assert!(child.try_wait().unwrap().is_none(), "still waiting");
    child.kill().await.unwrap();
    child.wait().await.unwrap();
    let store = SqliteStore::open(&format!(
        "sqlite://{}",
        setup.dir.join("devgate.db").display()
    ))
    .await
    .unwrap();
    assert!(
        store
            .connection("carol", "bitbucket")
            .await
            .unwrap()
            .is_none()
    );

    // The same browser: connected, and the command ends saying so.
    let (mut child, mut lines) = start();
    let link = printed_link(&mut lines).await;
    let walk = walk_connect(&link, "ann", "allow").await;
    assert!(walk.final_url.ends_with("/connected"), "{}", walk.final_url);
    let said = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut said = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            said.push_str(&line);
        }
        said
    })
    .await
    .unwrap();
    assert!(
        said.contains("Connected Bitbucket Cloud account Ann Dev for carol"),
        "{said}"
    );
    assert!(child.wait().await.unwrap().success());
}

/// The page server `devgate stdio` runs on `public_url` answers only to the allowed `Host` names and
/// caps request bodies at `limits.max_request_bytes`, like `devgate http`.
#[tokio::test(flavor = "multi_thread")]
async fn the_stdio_page_server_checks_host_and_caps_bodies() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "[limits]\nmax_request_bytes = 4096\n");
    setup.reserve_public_url();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("stdio")
        .arg("--user")
        .arg("alice")
        .arg("--config")
        .arg(&setup.config);
    for (k, v) in oauth_env() {
        cmd.env(k, v);
    }
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The page server is listening once the MCP handshake is done.
    let client = rmcp::ServiceExt::serve((), transport).await.unwrap();
    let link = connect_link(&client, "bitbucket_get_current_user").await;
    assert!(link.starts_with(setup.public_url()), "{link}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // A foreign Host (a DNS-rebinding page) is refused on every page; the right one is served.
    for path in [
        "/connect/bitbucket?ticket=x",
        "/integration-callback?state=x&code=y",
        "/connected",
    ] {
        let url = format!("{}{path}", setup.public_url());
        let foreign = http
            .get(&url)
            .header("host", format!("rebind.example:{}", setup.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status(), 403, "{path}");
        let own = http.get(&url).send().await.unwrap();
        assert_ne!(own.status(), 403, "{path}");
    }
    let page = http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);

    // An oversized form body gets 413 before anything reads it as a form.
    let big = format!("ticket={}&csrf=x", "a".repeat(64 * 1024));
    let posted = http
        .post(format!("{}/connect/bitbucket", setup.public_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 413);
    let html = posted.text().await.unwrap();
    assert!(html.contains("larger than devgate accepts"), "{html}");

    // And the connect itself still works through that server.
    let walk = walk_connect(&link, "ann", "allow").await;
    assert!(walk.final_url.ends_with("/connected"), "{}", walk.final_url);
    assert_eq!(current_user(&client).await["name"], "Ann Dev");
    client.cancel().await.unwrap();
}

/// `devgate http` serves the connect and confirm pages with the same Host check as `/mcp`: a page fetched through a
/// rebinding name is refused, so another site cannot read a connect page (and its CSRF token) or drive a
/// callback through the user's browser.
#[tokio::test]
async fn the_http_pages_check_host() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let _gateway = oauth_http(&setup, &[]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/connect/bitbucket?ticket=x",
        "/integration-callback?state=x&code=y",
        "/connected",
        "/confirm?ticket=x",
    ] {
        let url = format!("{}{path}", setup.public_url());
        let foreign = http
            .get(&url)
            .header("host", format!("rebind.example:{}", setup.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status(), 403, "{path}");
        let own = http.get(&url).send().await.unwrap();
        assert_ne!(own.status(), 403, "{path}");
    }
}
