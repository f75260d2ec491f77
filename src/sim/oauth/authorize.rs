//! The authorize endpoint: request checks, the consent page and the user's decision.

use super::*;

/// An authorize request that passed validation.
pub(super) struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    /// Buddy: the requested scopes. Bitbucket: ignored (empty).
    scopes: Vec<String>,
    challenge: Option<String>,
}

/// The parameters the consent form carries through.
pub(super) const CARRIED: &[&str] = &[
    "type",
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// Checks an authorize request; problems are a 400 page (as real providers do: no redirect to an
/// unverified place).
pub(super) fn validate(which: Which, params: &crate::sim::Query) -> Result<AuthRequest, Response> {
    let id = param(params, "client_id").unwrap_or_default();
    if id.is_empty() {
        return Err(error_page(which, "The request has no client_id."));
    }
    if id != client_id(which) {
        return Err(error_page(
            which,
            "Unknown client_id: no OAuth application is registered under it.",
        ));
    }
    let redirect_uri = param(params, "redirect_uri").unwrap_or_default();
    if redirect_uri.is_empty() {
        return Err(error_page(which, "The request has no redirect_uri."));
    }
    match url::Url::parse(redirect_uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.fragment().is_none() => {}
        _ => {
            return Err(error_page(
                which,
                "redirect_uri must be an absolute http(s) URL without a fragment.",
            ));
        }
    }
    match param(params, "response_type") {
        None | Some("") => return Err(error_page(which, "The request has no response_type.")),
        Some("code") => {}
        Some(_) => {
            return Err(error_page(
                which,
                "Unsupported response_type: only \"code\" is supported.",
            ));
        }
    }
    let challenge = param(params, "code_challenge")
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    if let Some(c) = &challenge {
        if param(params, "code_challenge_method") != Some("S256") {
            return Err(error_page(
                which,
                "Unsupported code_challenge_method: only S256 is supported.",
            ));
        }
        if c.len() != 43 || URL_SAFE_NO_PAD.decode(c).is_err() {
            return Err(error_page(
                which,
                "code_challenge must be the base64url SHA-256 of the code verifier.",
            ));
        }
    }
    let scopes = match which {
        Which::Buddy => {
            let scope = param(params, "scope").unwrap_or_default();
            let scopes: Vec<String> = scope.split_whitespace().map(str::to_string).collect();
            if scopes.is_empty() {
                return Err(error_page(which, "The request has no scope."));
            }
            if let Some(bad) = scopes.iter().find(|s| {
                !s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            }) {
                return Err(error_page(
                    which,
                    &format!("Invalid scope \"{bad}\": scopes are separated by spaces."),
                ));
            }
            scopes
        }
        Which::Bitbucket => Vec::new(),
    };
    Ok(AuthRequest {
        client_id: id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        state: param(params, "state").map(str::to_string),
        scopes,
        challenge,
    })
}

pub(super) async fn authorize_page(
    which: Which,
    State(state): State<Arc<SimState>>,
    Query(params): Query<crate::sim::Query>,
) -> Response {
    let request = match validate(which, &params) {
        Ok(r) => r,
        Err(page) => return page,
    };
    // Buddy grants the scopes asked for; Bitbucket the consumer's permissions, whatever is asked.
    let scopes = match which {
        Which::Buddy => request.scopes.clone(),
        Which::Bitbucket => lock(&state.oauth).bitbucket_scopes.clone(),
    };
    let (action, allow, deny) = match which {
        Which::Buddy => (BUDDY_AUTHORIZE_PATH, "Allow", "Deny"),
        Which::Bitbucket => (BITBUCKET_AUTHORIZE_PATH, "Grant access", "Cancel"),
    };
    let back_to = crate::sim::redirect_host(&request.redirect_uri);
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1><b>devgate</b> {}</h1>\n<p class=\"muted\">An application registered as <code>{}</code>. It will be able to:</p>\n<ul id=\"scopes\">\n",
        match which {
            Which::Buddy => "wants to access your Buddy.Works account",
            Which::Bitbucket => "is requesting access to your Bitbucket account",
        },
        escape(&request.client_id),
    );
    for scope in &scopes {
        let _ = writeln!(
            body,
            "<li>{} <code>{}</code></li>",
            escape(scope_meaning(which, scope)),
            escape(scope)
        );
    }
    let _ = write!(body, "</ul>\n<form method=\"post\" action=\"{action}\">\n");
    body.push_str(&crate::sim::hidden_inputs(&params, CARRIED));
    let _ = writeln!(
        body,
        "<p><label for=\"account\">Signed in as</label>\n<select id=\"account\" name=\"account\">"
    );
    for (i, account) in Account::all(which).into_iter().enumerate() {
        let _ = writeln!(
            body,
            "<option value=\"{}\"{}>{}</option>",
            account.login(),
            if i == 0 { " selected" } else { "" },
            escape(account.label())
        );
    }
    let _ = write!(
        body,
        "</select></p>\n<p class=\"buttons\"><button type=\"submit\" id=\"allow\" name=\"decision\" value=\"allow\">{allow}</button>\n\
         <button type=\"submit\" id=\"deny\" name=\"decision\" value=\"deny\" class=\"secondary\">{deny}</button></p>\n\
         </form>\n<p class=\"muted\">Either way you go back to <b id=\"redirect-host\">{}</b>.</p>\n",
        escape(&back_to)
    );
    let title = match which {
        Which::Buddy => "Authorize application",
        Which::Bitbucket => "Grant access",
    };
    provider_page(which, StatusCode::OK, title, &body)
}

/// What a scope lets the application do, in the provider's words (the sim's own phrasing).
pub(super) fn scope_meaning(which: Which, scope: &str) -> &'static str {
    match (which, scope) {
        (Which::Buddy, "WORKSPACE") => "View your workspaces, their members and projects",
        (Which::Buddy, "USER_INFO") => "View your profile: name, email and avatar",
        (Which::Buddy, "EXECUTION_INFO") => "View pipelines, their runs and logs",
        (Which::Buddy, "EXECUTION_RUN") => "Run, stop, retry and approve pipelines",
        (Which::Buddy, "EXECUTION_MANAGE") => "Add, change and delete pipelines",
        (Which::Buddy, "VARIABLE_INFO") => "View environment variables",
        (Which::Buddy, "INTEGRATION_INFO") => "View integrations",
        (Which::Buddy, "TOKEN_INFO") => "View your personal access tokens",
        (Which::Buddy, "PIPELINE_READ") => "View pipelines, their runs and logs",
        (Which::Buddy, "PIPELINE_RUN") => "Run, stop, retry and approve pipelines",
        (Which::Buddy, "VARIABLE_READ") => "View environment variables",
        (Which::Buddy, "INTEGRATION_READ") => "View integrations",
        (Which::Buddy, "MEMBER_EMAIL") => "See the e-mail addresses of workspace members",
        (Which::Buddy, "USER_READ") => "View your profile: name, email and avatar",
        (Which::Buddy, "USER_PAT_READ") => "View your personal access tokens",
        (Which::Buddy, "MEMBER_EMAIL_READ") => "See the e-mail addresses of workspace members",
        (Which::Bitbucket, "account") => "Read your account information",
        (Which::Bitbucket, "repository") => "Read your repositories",
        (Which::Bitbucket, "repository:write") => "Read and modify your repositories",
        (Which::Bitbucket, "pullrequest") => "Read your pull requests",
        (Which::Bitbucket, "pullrequest:write") => "Read and modify your pull requests",
        (Which::Bitbucket, "pipeline") => "Read your pipelines",
        (Which::Bitbucket, "pipeline:write") => "Read and modify your pipelines",
        _ => "Access this part of your account",
    }
}

/// A page in the provider's own look (its name in a coloured bar, its colours and buttons), so a user
/// can tell it from devgate's pages, with a note that it is the simulated provider.
pub(super) fn provider_page(which: Which, status: StatusCode, title: &str, body: &str) -> Response {
    let (brand, colour, text) = match which {
        Which::Buddy => ("Buddy.Works", "#1a86fd", "#1d2433"),
        Which::Bitbucket => ("Bitbucket", "#0052cc", "#172b4d"),
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} | {brand} (simulated)</title>\n<style>\
         body{{margin:0;font-family:-apple-system,\"Segoe UI\",Roboto,Helvetica,Arial,sans-serif;color:{text};background:#f4f5f7}}\
         header{{background:{colour};color:#fff;padding:14px 24px;font-size:20px;font-weight:700;letter-spacing:.2px}}\
         .sim{{background:#fff4d6;color:#5e4b00;text-align:center;font-size:13px;padding:6px}}\
         main{{max-width:440px;margin:40px auto;background:#fff;border-radius:6px;box-shadow:0 1px 4px rgba(9,30,66,.25);padding:28px 32px}}\
         h1{{font-size:20px;font-weight:500;margin:0 0 12px}}.muted{{color:#6b778c;font-size:14px}}\
         ul{{padding-left:20px}}li{{margin:6px 0}}code{{font-size:12px;color:#6b778c}}\
         select{{width:100%;padding:6px;margin-top:4px}}.buttons{{display:flex;gap:8px;justify-content:flex-end}}\
         button{{background:{colour};color:#fff;border:0;border-radius:4px;padding:8px 16px;font-size:14px;cursor:pointer}}\
         button.secondary{{background:transparent;color:{text}}}\
         </style></head>\n<body>\n<header>{brand}</header>\n\
         <p class=\"sim\">Simulated {brand} of devgate's sandbox and tests: no real account is involved.</p>\n\
         <main>\n{body}</main>\n</body>\n</html>\n"
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

pub(super) async fn authorize_decision(
    which: Which,
    State(state): State<Arc<SimState>>,
    body: Bytes,
) -> Response {
    let params: crate::sim::Query = url::form_urlencoded::parse(&body).into_owned().collect();
    let request = match validate(which, &params) {
        Ok(r) => r,
        Err(page) => return page,
    };
    let account = match param(&params, "account") {
        None | Some("") => Account::first(which),
        Some(login) => match Account::parse(which, login) {
            Some(a) => a,
            None => return error_page(which, "Unknown account."),
        },
    };
    let mut pairs: Vec<(&str, String)> = match param(&params, "decision") {
        Some("allow") => {
            let mut oauth = lock(&state.oauth);
            let scopes = match which {
                Which::Buddy => request.scopes.clone(),
                Which::Bitbucket => oauth.bitbucket_scopes.clone(),
            };
            let code = random_hex::<20>();
            oauth.secrets.push(code.clone());
            oauth.codes.insert(
                code.clone(),
                Code {
                    provider: which,
                    client_id: request.client_id.clone(),
                    account,
                    redirect_uri: request.redirect_uri.clone(),
                    challenge: request.challenge.clone(),
                    scopes,
                    issued: Instant::now(),
                },
            );
            vec![("code", code)]
        }
        Some("deny") => vec![
            ("error", "access_denied".into()),
            (
                "error_description",
                "The user denied access to the application.".into(),
            ),
        ],
        _ => return error_page(which, "The form has no decision (allow or deny)."),
    };
    if let Some(s) = &request.state {
        pairs.push(("state", s.clone()));
    }
    let mut target = url::Url::parse(&request.redirect_uri).expect("validated");
    target.query_pairs_mut().extend_pairs(pairs);
    Redirect::to(target.as_str()).into_response()
}

pub(super) fn error_page(which: Which, message: &str) -> Response {
    let body = format!(
        "<h1>Authorization error</h1>\n<p id=\"error\">{}</p>\n",
        escape(message)
    );
    provider_page(which, StatusCode::BAD_REQUEST, "Authorization error", &body)
}

pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
