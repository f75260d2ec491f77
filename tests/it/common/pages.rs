//! The browser side of the connect pages: a cookie-keeping HTTP client, form reading, and walks
//! through the connect page, the provider's consent page and the callback.

use std::sync::{Arc, Mutex};

/// The first `http(s)://…` link in a text.
pub fn link_in(text: &str) -> String {
    let start = text
        .find("http")
        .unwrap_or_else(|| panic!("no link in: {text}"));
    text[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .trim_end_matches(['.', ')', ','])
        .to_string()
}

/// The value of an `<input name="…" value="…">` in an HTML page.
pub fn form_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\"");
    let at = html.find(&marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + "value=\"".len();
    let end = tag[v..].find('"')?;
    Some(
        tag[v..v + end]
            .replace("&amp;", "&")
            .replace("&quot;", "\""),
    )
}

/// Every page a browser walk saw, for the secret scan.
#[derive(Default)]
pub struct Walk {
    pub pages: Vec<String>,
    pub final_url: String,
    /// The status of the page the walk ended on.
    pub final_status: u16,
}

/// Every `<input type="hidden" name="…" value="…">` of a page, unescaped.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<input") {
        let end = start + rest[start..].find('>').unwrap_or(rest.len() - start);
        let tag = &rest[start..end];
        if tag.contains("type=\"hidden\"") {
            let attr = |name: &str| {
                let key = format!("{name}=\"");
                let at = tag.find(&key)? + key.len();
                let len = tag[at..].find('"')?;
                Some(
                    tag[at..at + len]
                        .replace("&quot;", "\"")
                        .replace("&#39;", "'")
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&amp;", "&"),
                )
            };
            if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
                out.push((n, v));
            }
        }
        rest = &rest[end..];
    }
    out
}

/// The `action` of the first form on a page, resolved against the page's URL.
pub fn form_action(html: &str, page_url: &str) -> String {
    let at = html.find("<form").expect("a form");
    let tag = &html[at..at + html[at..].find('>').unwrap()];
    let key = "action=\"";
    let start = tag.find(key).expect("form action") + key.len();
    let action = &tag[start..start + tag[start..].find('"').unwrap()];
    url::Url::parse(page_url)
        .unwrap()
        .join(&action.replace("&amp;", "&"))
        .unwrap()
        .to_string()
}

/// Where a redirect leads, resolved against the URL that answered it.
pub fn location(response: &reqwest::Response, base: &str) -> String {
    let l = response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {} from {base}", response.status()))
        .to_str()
        .unwrap();
    url::Url::parse(base).unwrap().join(l).unwrap().to_string()
}

/// One cookie as a browser keeps it.
#[derive(Debug, Clone)]
pub struct Cookie {
    pub host: String,
    pub name: String,
    pub value: String,
    pub path: String,
}

/// An HTTP client that keeps cookies the way a browser does for these pages: by host (not port), sent
/// where the request path is under the cookie's `Path`, forgotten on `Max-Age=0`. It never follows
/// redirects itself, so a test sees every step.
#[derive(Clone)]
pub struct CookieClient {
    http: reqwest::Client,
    jar: Arc<Mutex<Vec<Cookie>>>,
}

impl Default for CookieClient {
    fn default() -> Self {
        Self::new()
    }
}

impl CookieClient {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: Arc::default(),
        }
    }

    /// Every cookie held now.
    pub fn cookies(&self) -> Vec<Cookie> {
        self.jar.lock().unwrap().clone()
    }

    /// Puts a cookie in the jar, as a forger would.
    pub fn set_cookie(&self, host: &str, name: &str, value: &str, path: &str) {
        self.jar.lock().unwrap().push(Cookie {
            host: host.into(),
            name: name.into(),
            value: value.into(),
            path: path.into(),
        });
    }

    fn header_for(&self, url: &url::Url) -> Option<String> {
        let host = url.host_str()?;
        let path = url.path();
        let pairs: Vec<String> = self
            .jar
            .lock()
            .unwrap()
            .iter()
            .filter(|c| {
                c.host == host
                    && (path == c.path
                        || path.starts_with(&format!("{}/", c.path.trim_end_matches('/'))))
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn keep(&self, url: &url::Url, response: &reqwest::Response) {
        let host = url.host_str().unwrap_or_default().to_string();
        let mut jar = self.jar.lock().unwrap();
        for header in response.headers().get_all("set-cookie") {
            let text = header.to_str().unwrap();
            let mut parts = text.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            let mut path = "/".to_string();
            let mut gone = false;
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                if k.eq_ignore_ascii_case("path") {
                    path = v.to_string();
                } else if k.eq_ignore_ascii_case("max-age") && v.parse::<i64>().unwrap() <= 0 {
                    gone = true;
                }
            }
            jar.retain(|c| !(c.host == host && c.name == name && c.path == path));
            if !gone {
                jar.push(Cookie {
                    host: host.clone(),
                    name: name.to_string(),
                    value: value.to_string(),
                    path,
                });
            }
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &str) -> reqwest::Response {
        let parsed = url::Url::parse(url).unwrap();
        let request = match self.header_for(&parsed) {
            Some(cookies) => request.header("cookie", cookies),
            None => request,
        };
        let response = request.send().await.unwrap();
        self.keep(&parsed, &response);
        response
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.send(self.http.get(url), url).await
    }

    pub async fn post_form(&self, url: &str, form: &[(String, String)]) -> reqwest::Response {
        self.send(self.http.post(url).form(form), url).await
    }
}

/// The first half of connecting in `browser`: the connect page and its button, up to the redirect to
/// the provider. Returns the provider's authorize URL; the connect page goes into `walk`.
pub async fn start_connect(browser: &CookieClient, link: &str, walk: &mut Walk) -> String {
    // 1. The connect page, which sets the CSRF cookie.
    let page = browser.get(link).await;
    assert_eq!(page.status(), 200, "connect page for {link}");
    let html = page.text().await.unwrap();
    walk.pages.push(html.clone());
    let action = form_action(&html, link);
    // 2. Its button: a POST that redirects to the provider.
    let posted = browser.post_form(&action, &hidden_fields(&html)).await;
    assert_eq!(
        posted.status().as_u16(),
        303,
        "connect POST: {}",
        posted.text().await.unwrap_or_default()
    );
    location(&posted, &action)
}

/// The second half, in `browser` (which may not be the one that started): the provider's consent
/// page (choosing `account`, answering `decision`), the callback and the page it ends on.
pub async fn finish_connect(
    browser: &CookieClient,
    authorize: &str,
    account: &str,
    decision: &str,
    walk: &mut Walk,
) {
    // 3. The provider's consent page and its answer.
    let consent = browser.get(authorize).await;
    assert_eq!(consent.status(), 200, "consent page at {authorize}");
    let html = consent.text().await.unwrap();
    walk.pages.push(html.clone());
    let mut form = hidden_fields(&html);
    form.push(("account".into(), account.into()));
    form.push(("decision".into(), decision.into()));
    let consent_action = form_action(&html, authorize);
    let answered = browser.post_form(&consent_action, &form).await;
    assert!(
        answered.status().is_redirection(),
        "consent answer: {}",
        answered.status()
    );
    let callback = location(&answered, &consent_action);
    // 4. devgate's callback, and where it sends the browser.
    let mut url = callback;
    for _ in 0..3 {
        let response = browser.get(&url).await;
        if response.status().is_redirection() {
            url = location(&response, &url);
            continue;
        }
        walk.final_status = response.status().as_u16();
        walk.pages.push(response.text().await.unwrap());
        break;
    }
    walk.final_url = url;
}

/// Walks a connect link as a browser would, with one cookie-keeping HTTP client: the connect page, its
/// POST, the provider's consent page (choosing `account`, answering `decision`), the callback, and the
/// page it ends on. Returns every page body seen and where it ended.
pub async fn walk_connect(link: &str, account: &str, decision: &str) -> Walk {
    let browser = CookieClient::new();
    let mut walk = Walk::default();
    let authorize = start_connect(&browser, link, &mut walk).await;
    finish_connect(&browser, &authorize, account, decision, &mut walk).await;
    walk
}
