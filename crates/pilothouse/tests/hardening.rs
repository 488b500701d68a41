//! Attacks on the real service, as a hostile holder of a write token, of a
//! Git commit or of a receiver URL would try them: the real `serve`, real
//! kube-apiserver clusters from testenv, and the attacker's own listeners on
//! 127.0.0.x (with a CA of their own). Each test performs the attack and
//! checks that nothing of value reached the attacker and nothing was
//! changed. (Items 14 and 16 of the hardening list are in `backup.rs`.)

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use pilothouse_testenv::{FakeNode, PodState, ProviderCloud, RecordingServer, TestCluster};
use serde_json::{Value, json};

use support::*;

/// Waits until `done` holds, failing with `what` after 60 s.
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 60s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills the service and returns everything it logged.
fn logs_of(server: &mut Server) -> String {
    server.kill();
    server
        .logs
        .take()
        .map(|logs| logs.join().unwrap_or_default())
        .unwrap_or_default()
}

/// Restarts the service with `extra` flags in place of the ones it had
/// after its repository flags.
fn restart_with(server: &mut Server, extra: &[&str]) {
    server.kill();
    server.args.truncate(5); // serve --repo R --repo-branch main
    server
        .args
        .extend(extra.iter().map(|arg| (*arg).to_owned()));
    server.start_again();
}

/// A kubeconfig for `server` trusting `ca_pem`, whose user runs `command args`.
fn exec_kubeconfig(server: &str, ca_pem: &str, command: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    exec:\n      \
         apiVersion: client.authentication.k8s.io/v1beta1\n      command: {command}\n      \
         args: [{}]\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
        BASE64.encode(ca_pem),
        args.join(", ")
    )
}

/// The CA (PEM) of a test cluster.
fn cluster_ca(cluster: &TestCluster) -> String {
    let config: Value = serde_yaml::from_str(cluster.token_kubeconfig_yaml()).unwrap();
    let data = config["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .unwrap();
    String::from_utf8(BASE64.decode(data).unwrap()).unwrap()
}

/// Fake exec credential plugins on a PATH of their own: each run appends
/// its arguments to `runs.log` and hands out `token`, as the real plugin
/// would hand out the service's cloud identity.
struct FakePlugins {
    dir: tempfile::TempDir,
}

impl FakePlugins {
    fn new(token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        for command in ["aws", "kubelogin"] {
            let script = format!(
                "#!/bin/sh\necho \"{command} $*\" >> '{}'\nprintf '%s' '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'\n",
                log.display()
            );
            let path = dir.path().join(command);
            std::fs::write(&path, script).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { dir }
    }

    fn env(&self) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_default();
        vec![(
            "PATH".to_owned(),
            format!("{}:{path}", self.dir.path().display()),
        )]
    }

    /// How often a plugin ran.
    fn runs(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("runs.log"))
            .map(|log| log.lines().count())
            .unwrap_or(0)
    }
}

async fn register(server: &Server, name: &str, kubeconfig: &str) -> (u16, Value) {
    server
        .call(
            "POST",
            "/api/v1/clusters",
            Some(json!({"name": name, "kubeconfig": kubeconfig, "sync_mode": "manual"})),
        )
        .await
}

/// Items 1, 8 and 12: an uploaded kubeconfig cannot make the service run
/// its cloud identity's plugin for a server of the uploader's choosing, nor
/// sidestep the pinned subcommand, nor use registration to scan ports.
#[tokio::test]
async fn exec_plugins_never_hand_the_services_identity_to_another_server() {
    const IDENTITY: &str = "the-services-cloud-identity-token";
    let plugins = FakePlugins::new(IDENTITY);
    let attacker = RecordingServer::start(
        "127.0.0.2",
        true,
        200,
        r#"{"major":"1","minor":"35","gitVersion":"v1.35.4"}"#,
    )
    .unwrap();
    let repo = Repo::new(small_state);
    let mut server = serve_with(
        &repo,
        &[],
        tempfile::tempdir().unwrap(),
        None,
        plugins.env(),
    );

    // An EKS token for a cluster named by the uploader, sent to their host.
    let kubeconfig = exec_kubeconfig(
        &attacker.url(),
        attacker.ca_pem(),
        "aws",
        &["eks", "get-token", "--cluster-name", "victim"],
    );
    let (status, body) = register(&server, "evil", &kubeconfig).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "kubeconfig: clusters[c].cluster.server");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("--exec-server-pattern"),
        "{body}"
    );
    // kubelogin with a boolean flag taken for one with a value
    let kubeconfig = exec_kubeconfig(
        "https://prod-dns.hcp.westeurope.azmk8s.io",
        attacker.ca_pem(),
        "kubelogin",
        &["--logtostderr", "remove-tokens", "get-token"],
    );
    let (status, body) = register(&server, "evil", &kubeconfig).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "kubeconfig: users[u].user.exec.args");
    assert_eq!(plugins.runs(), 0, "no plugin ran");
    assert_eq!(attacker.connections(), 0, "nothing reached the attacker");

    // Registration is no port scanner: a closed port and a port where
    // something else listens get the same answer.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
        listener.local_addr().unwrap()
    };
    let plain = RecordingServer::start("127.0.0.3", false, 200, "{}").unwrap();
    let token_user = |server: &str| {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    token: abc\n\
             contexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            BASE64.encode(attacker.ca_pem())
        )
    };
    let mut answers = Vec::new();
    for target in [
        format!("https://{closed}"),
        plain.url().replace("http:", "https:"),
    ] {
        let (status, body) = register(&server, "scan", &token_user(&target)).await;
        assert_eq!(status, 422, "{target}: {body}");
        answers.push(body["detail"].as_str().unwrap().to_owned());
    }
    assert_eq!(answers[0], answers[1]);
    assert!(
        !answers[0].contains("refused") && !answers[0].contains("os error"),
        "{answers:?}"
    );
    assert!(plain.connections() > 0, "the probe did reach the listener");

    // An endpoint the operator allows works, and the plugin runs for it...
    let cluster = TestCluster::start("exec-ok").await.unwrap();
    let plugins = FakePlugins::new(cluster.admin_token());
    server.env = plugins.env();
    restart_with(
        &mut server,
        &["--exec-server-pattern", "aws=https://127.0.0.1:*"],
    );
    let kubeconfig = exec_kubeconfig(
        cluster.server_url(),
        &cluster_ca(&cluster),
        "aws",
        &[
            "--region",
            "eu-west-1",
            "eks",
            "get-token",
            "--cluster-name",
            "ok",
        ],
    );
    let (status, body) = register(&server, "ok", &kubeconfig).await;
    assert_eq!(status, 201, "{body}");
    assert!(plugins.runs() > 0);

    // ...and is checked again before every run: without the pattern, the
    // stored credentials are refused and the plugin never runs again.
    restart_with(&mut server, &[]);
    let runs = plugins.runs();
    let (status, body) = server.call("POST", "/api/v1/clusters/ok/check", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reachability"], "unreachable", "{body}");
    assert!(
        body["last_error"]
            .as_str()
            .unwrap()
            .contains("--exec-server-pattern"),
        "{body}"
    );
    assert_eq!(plugins.runs(), runs, "the plugin did not run");
    let logs = logs_of(&mut server);
    assert!(!logs.contains(IDENTITY), "a token was logged");
    assert!(!logs.contains(cluster.admin_token()), "a token was logged");
}

/// `PUT /api/v1/repository` for a repository on `server`, with a token and
/// the server's CA.
fn token_for(server: &RecordingServer, token: &str) -> Value {
    json!({
        "url": format!("{}/desired.git", server.url()),
        "credentials": {"kind": "token", "token": token, "ca_certificate": server.ca_pem()},
    })
}

/// Items 2, 9, 10 and 11: the repository's Git credentials never follow its
/// URL to another host, local repositories and plain HTTP are not for API
/// callers, and a token cannot hide in the URL.
#[tokio::test]
async fn git_credentials_stay_with_the_host_they_were_given_for() {
    let repo = Repo::new(small_state);
    let mut server = serve(&repo, &[]);
    let first = RecordingServer::start("127.0.0.1", true, 401, "{}").unwrap();
    let attacker = RecordingServer::start("127.0.0.2", true, 401, "{}").unwrap();
    let (status, body) = server
        .call(
            "PUT",
            "/api/v1/repository",
            Some(token_for(&first, "ghp_TOKEN_FOR_FIRST")),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Moving the URL alone keeps no credentials: refused, naming them.
    let (status, body) = server
        .call(
            "PUT",
            "/api/v1/repository",
            Some(json!({"url": format!("{}/desired.git", attacker.url())})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "credentials", "{body}");
    let stored = server.get("/api/v1/repository").await;
    assert!(
        stored["url"].as_str().unwrap().starts_with(&first.url()),
        "{stored}"
    );
    // Only new credentials go to the new host; the old token never does.
    let (status, body) = server
        .call(
            "PUT",
            "/api/v1/repository",
            Some(token_for(&attacker, "ghp_TOKEN_FOR_SECOND")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sent = eventually("a fetch with credentials", async || {
        let seen = attacker.credentials_seen();
        (!seen.is_empty()).then_some(seen)
    })
    .await;
    for header in &sent {
        let basic = BASE64.decode(header.trim_start_matches("Basic ")).unwrap();
        let basic = String::from_utf8(basic).unwrap();
        assert!(basic.ends_with(":ghp_TOKEN_FOR_SECOND"), "{basic}");
    }

    // No token in the URL, no plain HTTP to another host.
    for (url, needle) in [
        (
            "https://ghp_LEAKED0123@127.0.0.2:1/desired.git".to_owned(),
            "names a user",
        ),
        ("http://10.1.2.3/desired.git".to_owned(), "loopback"),
    ] {
        let (status, body) = server
            .call(
                "PUT",
                "/api/v1/repository",
                Some(json!({"url": url, "credentials": {"kind": "none"}})),
            )
            .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["field"], "url", "{body}");
        assert!(body["detail"].as_str().unwrap().contains(needle), "{body}");
    }
    assert!(
        !server
            .get("/api/v1/repository")
            .await
            .to_string()
            .contains("ghp_LEAKED0123")
    );

    // Another repository on the host is not the API's to mirror, and the
    // answer does not tell whether a path exists.
    let other = Repo::new(small_state);
    let mut details = Vec::new();
    for path in [
        other.remote.display().to_string(),
        format!("file://{}", other.remote.display()),
        "/no/such/repository.git".to_owned(),
    ] {
        let (status, body) = server
            .call(
                "PUT",
                "/api/v1/repository",
                Some(json!({"url": path, "credentials": {"kind": "none"}})),
            )
            .await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["field"], "url");
        details.push(body["detail"].as_str().unwrap().to_owned());
    }
    assert!(details.iter().all(|d| *d == details[0]), "{details:?}");
    assert!(
        details[0].contains("--allow-local-repo-root"),
        "{details:?}"
    );
    // An operator can allow a directory.
    let root = other.remote.parent().unwrap().display().to_string();
    restart_with(&mut server, &["--allow-local-repo-root", &root]);
    let (status, body) = server
        .call(
            "PUT",
            "/api/v1/repository",
            Some(
                json!({"url": other.remote.display().to_string(), "credentials": {"kind": "none"}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let logs = logs_of(&mut server);
    for secret in [
        "ghp_TOKEN_FOR_FIRST",
        "ghp_TOKEN_FOR_SECOND",
        "ghp_LEAKED0123",
    ] {
        assert!(!logs.contains(secret), "{secret} was logged");
    }
}

/// Item 3: receivers cannot target loopback, private or metadata
/// addresses unless the operator allows them, the check holds at delivery,
/// and an answer's body never reaches the delivery log.
#[tokio::test]
async fn receivers_cannot_reach_internal_addresses_or_read_their_answers() {
    const INTERNAL: &str = "INTERNAL-METADATA-SECRET-7f3a";
    let leaky = RecordingServer::start(
        "127.0.0.1",
        false,
        500,
        &format!(r#"{{"AccessKeyId":"{INTERNAL}"}}"#),
    )
    .unwrap();
    let moved = RecordingServer::start("127.0.0.2", false, 200, "{}").unwrap();
    let cluster = TestCluster::start("ssrf").await.unwrap();
    cluster.create_namespace("shop").await.unwrap();
    cluster
        .create_node(&FakeNode::ready("node-1", ProviderCloud::Eks))
        .await
        .unwrap();
    let repo = Repo::new(small_state);
    let mut server = serve(
        &repo,
        &["--incident-hold-down", "1s", "--notify-retry-max", "1s"],
    );
    let receiver =
        |name: &str, url: &str| json!({"name": name, "config": {"kind": "webhook", "url": url}});
    for url in [
        format!("{}/hook", leaky.url()),
        format!("http://localhost:{}/hook", leaky.addr().port()),
        "https://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
        "https://10.0.0.1/hook".to_owned(),
    ] {
        let (status, body) = server
            .call("POST", "/api/v1/receivers", Some(receiver("probe", &url)))
            .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["field"], "config");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("--allow-receiver-network"),
            "{body}"
        );
    }
    assert_eq!(leaky.connections(), 0);

    // Allowed by the operator, for now.
    restart_with(
        &mut server,
        &[
            "--incident-hold-down",
            "1s",
            "--notify-retry-max",
            "1s",
            "--allow-receiver-network",
            "127.0.0.0/8",
        ],
    );
    for (name, target) in [("leaky", &leaky), ("moved", &moved)] {
        let (status, body) = server
            .call(
                "POST",
                "/api/v1/receivers",
                Some(receiver(name, &format!("{}/hook", target.url()))),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = server
            .call(
                "POST",
                "/api/v1/routes",
                Some(json!({"receiver": name, "group_by": [], "group_wait": "0s",
                    "group_interval": "1s", "repeat_interval": "1h", "continue": true})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    server.register("ssrf", &cluster, "eks", &["--sync-mode", "manual"]);
    // The operator narrows the range: 127.0.0.2 is no longer allowed.
    restart_with(
        &mut server,
        &[
            "--incident-hold-down",
            "1s",
            "--notify-retry-max",
            "1s",
            "--allow-receiver-network",
            "127.0.0.1/32",
        ],
    );
    cluster
        .create_pod_on(
            "node-1",
            "shop",
            "api-0",
            &[("api", "registry.example/api:1")],
            &[],
            None,
        )
        .await
        .unwrap();
    cluster
        .set_pod_state("shop", "api-0", &PodState::crash_loop(3, 1))
        .await
        .unwrap();
    let leaked = eventually("a failed delivery to the leaky receiver", async || {
        failed_delivery(&server, "leaky").await
    })
    .await;
    let refused = eventually("a refused delivery to the moved receiver", async || {
        failed_delivery(&server, "moved").await
    })
    .await;
    let error = leaked["last_error"].as_str().unwrap();
    assert!(error.contains("HTTP 500"), "{leaked}");
    let deliveries = server.get("/api/v1/receivers/leaky/deliveries").await;
    assert!(!deliveries.to_string().contains(INTERNAL), "{deliveries}");
    assert!(
        !leaky.requests().is_empty(),
        "the allowed receiver was reached"
    );
    let error = refused["last_error"].as_str().unwrap();
    assert!(error.contains("127.0.0.2"), "{refused}");
    assert_eq!(moved.connections(), 0, "nothing reached 127.0.0.2");
}

/// A delivery to the receiver that failed, if one did yet.
async fn failed_delivery(server: &Server, receiver: &str) -> Option<Value> {
    let deliveries = server
        .get(&format!("/api/v1/receivers/{receiver}/deliveries"))
        .await;
    deliveries
        .as_array()?
        .iter()
        .find(|d| d["last_error"].is_string())
        .cloned()
}

/// Item 4: a small archive that expands to far more than any real backup is
/// refused while it is decompressed, and nothing is written.
#[test]
fn a_decompression_bomb_is_refused_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.tar.zst");
    {
        let file = std::fs::File::create(&bomb).unwrap();
        let mut tar = tar::Builder::new(zstd::stream::write::Encoder::new(file, 3).unwrap());
        let size: u64 = 256 << 20;
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o600);
        header.set_size(size);
        tar.append_data(
            &mut header,
            "clusters/aks/shop/core/ConfigMap/bomb.json",
            std::io::repeat(0).take(size),
        )
        .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
    for args in [vec!["--to", "prod"], vec!["--store"]] {
        let data = tempfile::tempdir().unwrap();
        let output = std::process::Command::new(BIN)
            .arg("restore")
            .arg(&bomb)
            .args(&args)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(
            stderr.contains("clusters/aks/shop/core/ConfigMap/bomb.json")
                && stderr.contains("larger than the limit"),
            "{args:?}: {stderr}"
        );
        assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
    }
}

/// Item 5: made-up methods and paths sent without a token add no series to
/// `/metrics`.
#[tokio::test]
async fn unauthenticated_requests_cannot_grow_the_metrics() {
    let repo = Repo::new(small_state);
    let server = serve(&repo, &[]);
    let http = reqwest::Client::new();
    for i in 0..40 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let response = http
            .request(method, format!("{}/api/v1/clusters/x{i}", server.url))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
        http.get(format!("{}/no/such/path/{i}", server.url))
            .send()
            .await
            .unwrap();
    }
    let text = server.metrics().await;
    let series: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("pilothouse_http_requests_total{"))
        .collect();
    assert!(
        series.iter().any(|line| line.contains("method=\"OTHER\"")),
        "{text}"
    );
    for line in &series {
        assert!(!line.contains("MADEUP"), "{line}");
        assert!(!line.contains("/no/such/path"), "{line}");
    }
    assert!(series.len() < 10, "{series:#?}");
}

/// Reads from `stream` until the server closes it; what it sent.
fn read_until_closed(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(read) => received.extend_from_slice(&buf[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(error) => panic!("the server did not close the connection: {error}"),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Item 6: unfinished headers and silent connections are closed, and only
/// so many connections are served at once.
#[tokio::test]
async fn slow_and_silent_connections_are_closed_and_capped() {
    let repo = Repo::new(small_state);
    let server = serve(
        &repo,
        &[
            "--header-read-timeout",
            "1s",
            "--idle-timeout",
            "2s",
            "--max-connections",
            "4",
        ],
    );
    let address = format!("127.0.0.1:{}", server.port);
    tokio::task::spawn_blocking(move || {
        // slowloris: headers that never end
        let mut slow = TcpStream::connect(&address).unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: pilothouse\r\nX-Slow: ")
            .unwrap();
        read_until_closed(&mut slow);
        // a connection that says nothing
        let mut silent = TcpStream::connect(&address).unwrap();
        read_until_closed(&mut silent);
        // a kept-alive connection that stops talking after one answer
        let mut kept = TcpStream::connect(&address).unwrap();
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: pilothouse\r\n\r\n")
            .unwrap();
        let answer = read_until_closed(&mut kept);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        // Four silent connections take every slot: a fifth client is
        // answered only once the service has closed one of them. The
        // service closes a connection (its FIN is queued on our side at
        // once, over loopback) before it accepts the next: when the fifth
        // is answered, one of the four must read as closed already.
        let silent: Vec<TcpStream> = (0..4)
            .map(|_| TcpStream::connect(&address).unwrap())
            .collect();
        let mut fifth = TcpStream::connect(&address).unwrap();
        fifth
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: pilothouse\r\nConnection: close\r\n\r\n")
            .unwrap();
        let answer = read_until_closed(&mut fifth);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let closed = silent
            .iter()
            .filter(|stream| {
                stream.set_nonblocking(true).unwrap();
                let mut byte = [0u8; 1];
                let mut reader: &TcpStream = stream;
                matches!(reader.read(&mut byte), Ok(0))
                    || matches!(reader.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
            })
            .count();
        assert!(closed >= 1, "the fifth was served while four connections held every slot");
        // and every one of them is closed in the end
        for mut stream in silent {
            stream.set_nonblocking(false).unwrap();
            read_until_closed(&mut stream);
        }
    })
    .await
    .unwrap();
}

/// Item 7: a commit whose kustomization is a symbolic link out of the
/// repository, or whose resources climb out of it, cannot make the service
/// read files elsewhere on its host.
#[tokio::test]
async fn a_commit_cannot_make_the_service_read_outside_the_checkout() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("kustomization.yaml"),
        "resources: [stolen.yaml]\n",
    )
    .unwrap();
    std::fs::write(
        outside.path().join("stolen.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\n  namespace: default\ndata:\n  secret: HOST-FILE-CONTENT\n",
    )
    .unwrap();
    let cluster = TestCluster::start("symlink").await.unwrap();
    let repo = Repo::new(small_state);
    std::fs::create_dir_all(repo.work.join("gitops/clusters/leak")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("kustomization.yaml"),
        repo.work.join("gitops/clusters/leak/kustomization.yaml"),
    )
    .unwrap();
    repo.commit("a kustomization that points out of the repository");
    let server = serve(&repo, &[]);
    server.set_webhook_secret(&repo).await;
    server.register("leak", &cluster, "eks", &[]);
    let failed = |needle: &'static str| {
        move |cluster: &Value| {
            cluster["sync"]["status"] == "failed"
                && cluster["sync"]["error"]
                    .as_str()
                    .is_some_and(|error| error.contains(needle))
        }
    };
    let synced = server
        .wait_cluster("leak", "a sync refusing the link", failed("symbolic link"))
        .await;
    let error = synced["sync"]["error"].as_str().unwrap();
    assert!(!error.contains("HOST-FILE-CONTENT"), "{error}");

    // A plain path climbing out of the checkout is refused too.
    std::fs::remove_file(repo.work.join("gitops/clusters/leak/kustomization.yaml")).unwrap();
    let climb = format!("{}{}", "../".repeat(40), outside.path().display()).replace("//", "/");
    repo.write(
        "gitops/clusters/leak/kustomization.yaml",
        &format!("resources:\n  - {climb}\n"),
    );
    let revision = repo.commit("resources that climb out of the repository");
    assert_eq!(server.push_webhook(&revision, WEBHOOK_SECRET).await, 202);
    let synced = server
        .wait_cluster(
            "leak",
            "a sync refusing the climb",
            failed("outside the kustomization root"),
        )
        .await;
    let error = synced["sync"]["error"].as_str().unwrap();
    assert!(!error.contains("HOST-FILE-CONTENT"), "{error}");
    let leaked: Vec<Value> = kubectl_items(&cluster, &["configmaps", "-n", "default"])
        .into_iter()
        .filter(|c| c["metadata"]["name"] == "stolen")
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
}

/// Item 13: a replayed webhook delivery is refused, and a 401 does not tell
/// whether a webhook secret is configured.
#[tokio::test]
async fn webhooks_refuse_replays_and_401s_tell_nothing() {
    let repo = Repo::new(small_state);
    let server = serve(&repo, &[]);
    let head = git(&repo.work, &["rev-parse", "HEAD"]);
    let deliver = |secret: &str, delivery: Option<&str>, after: &str| {
        let body = json!({"ref": "refs/heads/main", "after": after}).to_string();
        let signature = hmac_sha256_hex(secret, body.as_bytes());
        let mut request = server
            .http
            .post(format!("{}/api/v1/webhooks/git", server.url))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-hub-signature-256", format!("sha256={signature}"))
            .body(body);
        if let Some(id) = delivery {
            request = request.header("x-github-delivery", id);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, without_secret) = deliver(WEBHOOK_SECRET, None, &head).await;
    assert_eq!(status, 401);
    server.set_webhook_secret(&repo).await;
    let (status, wrong_signature) = deliver("not-the-secret-at-all", None, &head).await;
    assert_eq!(status, 401);
    assert_eq!(without_secret["detail"], wrong_signature["detail"]);

    let id = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let (status, body) = deliver(WEBHOOK_SECRET, Some(id), &head).await;
    assert_eq!(status, 202, "{body}");
    // the same delivery again, under its id, under another id, or with none
    for replay in [Some(id), Some("a-made-up-delivery-id"), None] {
        let (status, body) = deliver(WEBHOOK_SECRET, replay, &head).await;
        assert_eq!(status, 409, "a replay ({replay:?}): {body}");
    }
    // another push is a delivery of its own, and its id may not be reused
    let other = "0123456789abcdef0123456789abcdef01234567";
    let (status, body) = deliver(WEBHOOK_SECRET, Some(id), other).await;
    assert_eq!(status, 409, "a reused delivery id: {body}");
    let (status, body) = deliver(WEBHOOK_SECRET, Some("a-later-delivery-0001"), other).await;
    assert_eq!(status, 202, "{body}");
}

/// Item 13: the API can be served over HTTPS directly.
#[tokio::test]
async fn the_api_is_served_over_tls_when_given_a_certificate() {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let repo = Repo::new(small_state);
    let cert_arg = cert_file.display().to_string();
    let key_arg = key_file.display().to_string();
    let server = serve(&repo, &["--tls-cert", &cert_arg, "--tls-key", &key_arg]);

    // plain HTTP gets no answer from the HTTPS port
    assert!(
        server
            .http
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .is_err()
    );
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let request = format!(
        "GET /api/v1/clusters HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        server.token
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Item 15: a sync asked for right after registration is answered, never
/// 404, however the worker's pick of the queued sync falls.
#[tokio::test]
async fn a_sync_asked_for_right_after_registration_is_always_answered() {
    let cluster = TestCluster::start("race").await.unwrap();
    let repo = Repo::new(small_state);
    let server = serve(&repo, &["--sync-concurrency", "8"]);
    let kubeconfig = cluster.token_kubeconfig_yaml().to_owned();
    for round in 0..60 {
        let name = format!("race-{round}");
        let (status, body) = server
            .call(
                "POST",
                "/api/v1/clusters",
                Some(json!({"name": name, "kubeconfig": kubeconfig, "cloud": "eks"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = server
            .call("POST", &format!("/api/v1/clusters/{name}/sync"), None)
            .await;
        assert_eq!(status, 202, "round {round}: {body}");
        assert!(
            matches!(body["status"].as_str(), Some("queued" | "running")),
            "{body}"
        );
    }
}
