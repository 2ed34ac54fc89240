//! `kind: aws` against a real moto server (ACM, Secrets Manager, IAM and STS emulation),
//! started by each test on an ephemeral loopback port and stopped after. Fixtures are put in
//! place with boto3 from the test venv (moto depends on it); certificates are generated here
//! with rcgen. Everything is checked through the real `certvigil` binary.
//!
//! Install what these tests need with `tests/components/aws.sh`; without it they fail.

use crate::common;

use common::{NOW, RUN_LIMIT, Run, Sandbox, certvigil, run_with_timeout, sha256_hex};
use serde_json::{Value, json};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn venv() -> PathBuf {
    PathBuf::from(std::env::var("CERTVIGIL_TEST_VENV").unwrap_or_else(|_| "/opt/certvigil-test-venv".into()))
}

/// A moto server on 127.0.0.1, killed when dropped.
struct Moto {
    child: Child,
    port: u16,
    _log: tempfile::TempDir,
}

impl Moto {
    fn start() -> Moto {
        // The port is chosen before moto binds it; if another process (a parallel test's moto)
        // took it meanwhile, our server exits and we try another.
        for _ in 0..5 {
            if let Some(m) = Self::try_start() {
                return m;
            }
        }
        panic!("moto_server did not start on a free port in 5 attempts");
    }

    fn try_start() -> Option<Moto> {
        let bin = venv().join("bin/moto_server");
        assert!(bin.exists(), "{} is missing: run tests/components/aws.sh to install moto[server]", bin.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let log = tempfile::tempdir().expect("tempdir");
        let out = std::fs::File::create(log.path().join("moto.log")).expect("moto log");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("moto log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; run tests/components/aws.sh", bin.display()));
        let mut moto = Moto { child, port, _log: log };
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = moto.child.try_wait() {
                return None; // it could not bind: the port was taken
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "moto_server did not listen on port {port} within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Still ours a moment later (not another process that answered on the port).
        std::thread::sleep(Duration::from_millis(200));
        match moto.child.try_wait() {
            Ok(None) => Some(moto),
            _ => None,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs Python against this moto with boto3 clients `acm`, `sm`, `iam` (region us-east-1)
    /// and `data` (the JSON given); the script prints a JSON result.
    fn py(&self, data: &Value, code: &str) -> Value {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.json");
        std::fs::write(&input, data.to_string()).expect("setup input");
        let prelude = "import boto3, json, os, base64\n\
            kw = dict(endpoint_url=os.environ['MOTO'], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
            acm = boto3.client('acm', **kw)\nsm = boto3.client('secretsmanager', **kw)\niam = boto3.client('iam', **kw)\n\
            data = json.load(open(os.environ['INPUT']))\nout = None\n";
        let script = format!("{prelude}{code}\nprint(json.dumps(out))\n");
        let res = Command::new(venv().join("bin/python"))
            .args(["-c", &script])
            .env("MOTO", self.endpoint())
            .env("INPUT", &input)
            .env_remove("AWS_PROFILE")
            .output()
            .expect("run the venv's python (tests/components/aws.sh)");
        assert!(res.status.success(), "moto setup failed:\n{}", String::from_utf8_lossy(&res.stderr));
        serde_json::from_slice(&res.stdout)
            .unwrap_or_else(|e| panic!("setup output is not JSON ({e}): {}", String::from_utf8_lossy(&res.stdout)))
    }
}

/// ACM returns the chain given at import followed by its root CA (moto does the same): the
/// fingerprint of that root, which every ACM fetch also inventories.
fn acm_root_fingerprint(moto: &Moto) -> String {
    let v = moto.py(&json!({}), "import hashlib, ssl\nfrom moto.acm.models import AWS_ROOT_CA\nout = hashlib.sha256(ssl.PEM_cert_to_DER_cert(AWS_ROOT_CA.decode())).hexdigest()\n");
    v.as_str().expect("a fingerprint").to_string()
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed P-256 certificate valid from yesterday for `days` days (real clock: moto
/// checks validity on import), with its key.
struct Cert {
    pem: String,
    key: String,
    der: Vec<u8>,
    fingerprint: String,
}

fn cert(cn: &str, days: i64) -> Cert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("test fixture");
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).expect("test fixture");
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
    let c = params.self_signed(&key).expect("test fixture");
    let der = c.der().to_vec();
    Cert { pem: c.pem(), key: key.serialize_pem(), fingerprint: sha256_hex(&der), der }
}

/// AWS variables the credential chain reads: cleared, then set from `vars`; HOME is an empty
/// directory and instance metadata is off, so nothing from this machine leaks in.
fn with_aws_env(mut cmd: Command, home: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_ENDPOINT_URL_STS",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("HOME", home).env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

const TEST_KEYS: [(&str, &str); 2] = [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")];

fn run(sb: &Sandbox, vars: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = with_aws_env(sb.command_at(NOW), sb.dir.path(), vars);
    cmd.args(args);
    run_with_timeout(cmd, RUN_LIMIT)
}

fn scan(sb: &Sandbox, vars: &[(&str, &str)]) -> Value {
    let out = run(sb, vars, &["scan", "-o", "json"]);
    let v = out.json();
    assert_eq!(v["run"]["errors"], 0, "scan errors:\n{}\n{}", out.stdout, out.stderr);
    v
}

fn fingerprints(sb: &Sandbox) -> Vec<String> {
    let v = run(sb, &TEST_KEYS, &["list", "-o", "json"]).expect_code(0).json();
    let list = v.as_array().cloned().or_else(|| v["certificates"].as_array().cloned()).unwrap_or_else(|| panic!("list output: {v}"));
    list.iter().map(|c| c["fingerprint"].as_str().expect("test fixture").to_string()).collect()
}

fn sightings(sb: &Sandbox, fingerprint: &str) -> Vec<Value> {
    let v = run(sb, &TEST_KEYS, &["show", fingerprint, "-o", "json"]).expect_code(0).json();
    v["sightings"].as_array().cloned().unwrap_or_else(|| panic!("show output: {v}"))
}

const IMPORT: &str = "def imp(c, arn=None):\n    kw = dict(Certificate=c['pem'].encode(), PrivateKey=c['key'].encode())\n    \
                      if c.get('chain'): kw['CertificateChain'] = c['chain'].encode()\n    \
                      if arn: kw['CertificateArn'] = arn\n    return acm.import_certificate(**kw)['CertificateArn']\n";

#[test]
fn acm_and_secrets_are_inventoried_with_meta_and_unchanged_objects_are_not_read_again() {
    let moto = Moto::start();
    let acm: Vec<Cert> = (0..3).map(|i| cert(&format!("acm{i}.example.com"), 90)).collect();
    let chain_ca = cert("chain-ca.example.com", 3650);
    let s_plain = cert("plain.example.com", 90);
    let s_json = cert("json.example.com", 90);
    let s_bin = cert("binary.example.com", 90);
    let s_untagged = cert("untagged.example.com", 90);
    let s_other = cert("other.example.com", 90);
    let data = json!({
        "acm": acm.iter().enumerate().map(|(i, c)| json!({"pem": c.pem, "key": c.key, "chain": if i == 0 { Some(&chain_ca.pem) } else { None }})).collect::<Vec<_>>(),
        "plain": format!("{}{}", s_plain.key, s_plain.pem),
        "json": json!({"certificate": s_json.pem, "private_key": s_json.key, "port": 443}).to_string(),
        "bin": s_bin.der.iter().map(|b| *b as u32).collect::<Vec<_>>(),
        "untagged": s_untagged.pem,
        "other": s_other.pem,
    });
    let arns = moto.py(
        &data,
        &format!(
            "{IMPORT}out = [imp(c) for c in data['acm']]\n\
             tls = [{{'Key': 'purpose', 'Value': 'tls'}}]\n\
             sm.create_secret(Name='certs/plain', SecretString=data['plain'], Tags=tls)\n\
             sm.create_secret(Name='certs/json', SecretString=data['json'], Tags=tls + [{{'Key': 'team', 'Value': 'web'}}])\n\
             sm.create_secret(Name='certs/binary', SecretBinary=bytes(data['bin']), Tags=tls)\n\
             sm.create_secret(Name='certs/password', SecretString='hunter2-not-a-cert', Tags=tls)\n\
             sm.create_secret(Name='certs/untagged', SecretString=data['untagged'])\n\
             sm.create_secret(Name='certs/wrong-tag', SecretString=data['other'], Tags=[{{'Key': 'purpose', 'Value': 'db'}}])\n\
             sm.create_secret(Name='other/pem', SecretString=data['other'], Tags=tls)\n"
        ),
    );
    let arns: Vec<String> = arns.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();

    let sb = Sandbox::new();
    sb.config(&format!(
        "sources:\n  - name: aws-test\n    kind: aws\n    region: us-east-1\n    endpoint: {}\n    tags: [cloud]\n    \
         secrets_manager:\n      name_prefix: certs/\n      tags: {{purpose: tls}}\n",
        moto.endpoint()
    ));
    let first = scan(&sb, &TEST_KEYS);
    let src = &first["sources"][0];
    // 3 ACM certificates + certs/plain, certs/json, certs/binary, certs/password.
    assert_eq!((src["objects"].as_i64(), src["read"].as_i64(), src["errors"].as_i64()), (Some(7), Some(7), Some(0)), "{first}");

    let fps = fingerprints(&sb);
    let mut expected: Vec<&str> = acm.iter().map(|c| c.fingerprint.as_str()).collect();
    let root = acm_root_fingerprint(&moto);
    expected.extend([&chain_ca.fingerprint, &root, &s_plain.fingerprint, &s_json.fingerprint, &s_bin.fingerprint].map(String::as_str));
    for fp in &expected {
        assert!(fps.iter().any(|f| f == fp), "{fp} not inventoried: {fps:?}");
    }
    for (absent, why) in [(&s_untagged, "untagged"), (&s_other, "outside the prefix / wrong tag")] {
        assert!(!fps.contains(&absent.fingerprint), "the {why} secret was read");
    }
    assert_eq!(fps.len(), expected.len(), "{fps:?}");

    // ACM meta.
    let s = sightings(&sb, &acm[0].fingerprint);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0]["location"], format!("aws:acm:us-east-1:{}", arns[0]));
    let meta = &s[0]["meta"];
    assert_eq!(
        (meta["arn"].as_str(), meta["status"].as_str(), meta["type"].as_str()),
        (Some(arns[0].as_str()), Some("ISSUED"), Some("IMPORTED")),
        "{meta}"
    );
    assert!(meta["in_use_by"].is_array() && meta.get("renewal_eligibility").is_some(), "{meta}");
    // Secrets Manager meta: name, arn, version id.
    let s = sightings(&sb, &s_json.fingerprint);
    let meta = &s[0]["meta"];
    assert_eq!(meta["name"], "certs/json", "{meta}");
    assert!(meta["arn"].as_str().unwrap().contains(":secret:certs/json"), "{meta}");
    assert!(s[0]["location"].as_str().unwrap().starts_with("aws:secretsmanager:us-east-1:arn:"), "{s:?}");
    assert!(meta["version_id"].as_str().is_some_and(|v| !v.is_empty()), "{meta}");

    // Nothing changed: nothing read.
    let again = scan(&sb, &TEST_KEYS);
    assert_eq!(again["run"]["objects_read"], 0, "{again}");
    assert_eq!(again["sources"][0]["objects"], 7);

    // Re-import a certificate under the same ARN, and put a new version of a secret.
    std::thread::sleep(Duration::from_millis(1100));
    let renewed = cert("acm1.example.com", 200);
    let rotated = cert("plain.example.com", 200);
    moto.py(
        &json!({"c": {"pem": renewed.pem, "key": renewed.key}, "arn": arns[1], "s": rotated.pem}),
        &format!("{IMPORT}imp(data['c'], data['arn'])\nsm.put_secret_value(SecretId='certs/plain', SecretString=data['s'])\n"),
    );
    let third = scan(&sb, &TEST_KEYS);
    assert_eq!(third["run"]["objects_read"], 2, "only the re-imported certificate and the new secret version are read: {third}");
    let fps = fingerprints(&sb);
    assert!(fps.contains(&renewed.fingerprint) && fps.contains(&rotated.fingerprint), "{fps:?}");
    let s = sightings(&sb, &renewed.fingerprint);
    assert_eq!(s[0]["location"], format!("aws:acm:us-east-1:{}", arns[1]));
}

#[test]
fn hundreds_of_objects_across_pages() {
    let moto = Moto::start();
    // ListSecrets pages hold 100 here: 130 secrets take two pages. (moto's ListCertificates
    // returns everything in one page; the ACM page loop is covered by a unit test.)
    let secrets: Vec<Cert> = (0..130).map(|i| cert(&format!("s{i}.example.com"), 90)).collect();
    let acm: Vec<Cert> = (0..60).map(|i| cert(&format!("a{i}.example.com"), 90)).collect();
    moto.py(
        &json!({"s": secrets.iter().map(|c| &c.pem).collect::<Vec<_>>(), "a": acm.iter().map(|c| json!({"pem": c.pem, "key": c.key})).collect::<Vec<_>>()}),
        &format!("{IMPORT}[imp(c) for c in data['a']]\nfor i, p in enumerate(data['s']): sm.create_secret(Name=f'bulk/{{i:03}}', SecretString=p)\n"),
    );
    let sb = Sandbox::new();
    sb.config(&format!(
        "sources:\n  - {{name: bulk, kind: aws, region: us-east-1, endpoint: '{}', concurrency: 8, secrets_manager: {{}}}}\n",
        moto.endpoint()
    ));
    let start = Instant::now();
    let v = scan(&sb, &TEST_KEYS);
    eprintln!("scan of 60 ACM certificates and 130 secrets: {:?}", start.elapsed());
    assert_eq!(v["sources"][0]["objects"], 190, "{v}");
    let fps = fingerprints(&sb);
    assert_eq!(fps.len(), 191, "190 and the ACM root CA");
    for c in secrets.iter().chain(&acm) {
        assert!(fps.contains(&c.fingerprint), "{} missing", c.fingerprint);
    }
    let again = scan(&sb, &TEST_KEYS);
    assert_eq!(again["run"]["objects_read"], 0, "{again}");
}

#[test]
fn requests_are_signed_and_bad_credentials_are_a_clear_per_source_error() {
    let moto = Moto::start();
    let c = cert("signed.example.com", 90);
    // An IAM user with a real key pair, then authentication switched on: from here moto
    // verifies every SigV4 signature against that user's secret.
    let keys = moto.py(
        &json!({"c": {"pem": c.pem, "key": c.key}}),
        &format!(
            "{IMPORT}imp(data['c'])\niam.create_user(UserName='scanner')\n\
             iam.put_user_policy(UserName='scanner', PolicyName='read', PolicyDocument=json.dumps({{'Version': '2012-10-17', \
             'Statement': [{{'Effect': 'Allow', 'Action': ['acm:*', 'secretsmanager:*'], 'Resource': '*'}}]}}))\n\
             k = iam.create_access_key(UserName='scanner')['AccessKey']\n\
             out = {{'id': k['AccessKeyId'], 'secret': k['SecretAccessKey']}}\n\
             import urllib.request\n\
             urllib.request.urlopen(urllib.request.Request(os.environ['MOTO'] + '/moto-api/reset-auth', data=b'0', method='POST', headers={{'Content-Type': 'text/plain'}})).read()\n"
        ),
    );
    let (id, secret) = (keys["id"].as_str().unwrap().to_string(), keys["secret"].as_str().unwrap().to_string());
    let sb = Sandbox::new();
    sb.config(&format!(
        "sources:\n  - {{name: signed, kind: aws, region: us-east-1, endpoint: '{}', secrets_manager: {{}}}}\n",
        moto.endpoint()
    ));

    // The right key: moto recomputes the signature and accepts it.
    let ok = scan(&sb, &[("AWS_ACCESS_KEY_ID", &id), ("AWS_SECRET_ACCESS_KEY", &secret)]);
    assert_eq!(ok["sources"][0]["objects"], 1, "{ok}");
    assert!(fingerprints(&sb).contains(&c.fingerprint));

    // A wrong secret and an unknown key id: the scan reports, per source, AWS's error code.
    let wrong_secret = "wrong-secret-value-1234567890";
    for (key_id, key_secret, code) in
        [(id.as_str(), wrong_secret, "SignatureDoesNotMatch"), ("AKIAUNKNOWN000000000", wrong_secret, "InvalidClientTokenId")]
    {
        let sb = Sandbox::new();
        sb.config(&format!("sources:\n  - {{name: signed, kind: aws, region: us-east-1, endpoint: '{}'}}\n", moto.endpoint()));
        let out = run(&sb, &[("AWS_ACCESS_KEY_ID", key_id), ("AWS_SECRET_ACCESS_KEY", key_secret)], &["scan", "-o", "json"]);
        assert_eq!(out.code, 4, "a scan with errors exits 4:\n{}\n{}", out.stdout, out.stderr);
        let v = out.json();
        let errors = v["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{v}");
        assert_eq!(errors[0]["source"], "signed");
        let msg = errors[0]["message"].as_str().unwrap();
        assert!(msg.contains(code) && msg.contains("ListCertificates") && msg.contains("403"), "{msg}");
        assert!(!out.stdout.contains(key_secret) && !out.stderr.contains(key_secret), "the secret key is echoed");
    }

    // A source that cannot be listed is unknown, not empty: what it held stays current.
    let out = run(&sb, &[("AWS_ACCESS_KEY_ID", &id), ("AWS_SECRET_ACCESS_KEY", wrong_secret)], &["scan", "-o", "json"]);
    assert_eq!(out.code, 4, "{}", out.stdout);
    let s = sightings(&sb, &c.fingerprint);
    assert!(s[0]["gone_since"].is_null(), "an unlistable source marked its certificate gone: {s:?}");
}

#[test]
fn a_certificate_in_acm_and_in_a_file_is_one_certificate_with_two_sightings() {
    let moto = Moto::start();
    let c = cert("both.example.com", 90);
    moto.py(&json!({"c": {"pem": c.pem, "key": c.key}}), &format!("{IMPORT}out = imp(data['c'])\n"));
    let sb = Sandbox::new();
    sb.write("certs/both.pem", &c.pem);
    // Credentials through web identity this time: moto's STS answers AssumeRoleWithWebIdentity.
    let token = sb.write("token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0ZXN0In0.");
    sb.config(&format!(
        "sources:\n  - {{name: disk, kind: files, paths: [certs]}}\n  - {{name: cloud, kind: aws, region: us-east-1, endpoint: '{}'}}\n",
        moto.endpoint()
    ));
    let sts = moto.endpoint();
    let vars = [
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap()),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/certvigil"),
        ("AWS_ENDPOINT_URL_STS", sts.as_str()),
    ];
    let v = scan(&sb, &vars);
    assert_eq!(v["sources"][1]["objects"], 1, "{v}");
    let fps = fingerprints(&sb);
    let mut want = vec![c.fingerprint.clone(), acm_root_fingerprint(&moto)];
    let mut fps = fps;
    want.sort();
    fps.sort();
    assert_eq!(fps, want, "the certificate once, and the root CA ACM appends to its chain");
    let s = sightings(&sb, &c.fingerprint);
    let mut places: Vec<String> =
        s.iter().map(|x| format!("{}:{}", x["source"].as_str().unwrap(), x["location"].as_str().unwrap())).collect();
    places.sort();
    assert_eq!(places.len(), 2, "{s:?}");
    assert!(places[0].starts_with("cloud:aws:acm:us-east-1:arn:aws:acm:us-east-1:") && places[1].starts_with("disk:"), "{places:?}");
}

#[test]
fn the_example_configuration_validates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/sources-aws.yaml");
    let mut cmd = certvigil();
    cmd.arg("-c").arg(&path).args(["config", "validate"]);
    let out = run_with_timeout(cmd, RUN_LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn owners_come_from_acm_and_secrets_manager_tags() {
    let moto = Moto::start();
    let (acm_pay, acm_plain, s_web, s_orphan) =
        (cert("pay.example.com", 90), cert("plain.example.com", 90), cert("web.example.com", 90), cert("orphan.example.com", 90));
    let arns = moto.py(
        &json!({"pay": {"pay": acm_pay.pem, "key": acm_pay.key}, "plain": {"pem": acm_plain.pem, "key": acm_plain.key},
                "web": s_web.pem, "orphan": s_orphan.pem}),
        &format!(
            "{IMPORT}data['pay']['pem'] = data['pay'].pop('pay')\n\
             pay = imp(data['pay'])\n\
             acm.add_tags_to_certificate(CertificateArn=pay, Tags=[{{'Key': 'certvigil.io/owner', 'Value': 'payments'}}, \
             {{'Key': 'owner_contact', 'Value': 'payments-oncall@corp.example'}}, {{'Key': 'env', 'Value': 'prod'}}])\n\
             plain = imp(data['plain'])\n\
             sm.create_secret(Name='certs/web', SecretString=data['web'], Tags=[{{'Key': 'owner', 'Value': 'web-team'}}])\n\
             sm.create_secret(Name='certs/orphan', SecretString=data['orphan'], Tags=[{{'Key': 'env', 'Value': 'prod'}}])\n\
             out = [pay, plain]\n"
        ),
    );
    let pay_arn = arns[0].as_str().expect("arn").to_string();
    let sb = Sandbox::new();
    sb.config(&format!(
        "sources:\n  - {{name: cloud, kind: aws, region: us-east-1, endpoint: '{}', secrets_manager: {{name_prefix: certs/}}}}\n\
         owners:\n  teams:\n    - {{name: web-team, contact: web-oncall@corp.example}}\n",
        moto.endpoint()
    ));
    let first = scan(&sb, &TEST_KEYS);
    assert_eq!(first["sources"][0]["objects"], 4, "{first}");
    let owner = |fp: &str| run(&sb, &TEST_KEYS, &["show", fp, "-o", "json"]).expect_code(0).json()["owner"].clone();
    assert_eq!(
        owner(&acm_pay.fingerprint),
        json!({"name": "payments", "contact": "payments-oncall@corp.example",
               "origin": {"kind": "aws", "source": "cloud", "location": format!("aws:acm:us-east-1:{pay_arn}")}})
    );
    let meta = &sightings(&sb, &acm_pay.fingerprint)[0]["meta"];
    assert_eq!((meta["owner"].as_str(), meta["owner_from"].as_str()), (Some("payments"), Some("tag")), "{meta}");
    let web = owner(&s_web.fingerprint);
    assert_eq!(
        (web["name"].as_str(), web["contact"].as_str(), web["origin"]["kind"].as_str()),
        (Some("web-team"), Some("web-oncall@corp.example"), Some("aws"))
    );
    assert!(owner(&acm_plain.fingerprint).is_null() && owner(&s_orphan.fingerprint).is_null());
    let orphans = run(&sb, &TEST_KEYS, &["list", "--owner", "none", "-o", "json"]).expect_code(0).json();
    let mut orphans: Vec<&str> = orphans.as_array().expect("array").iter().filter_map(|c| c["fingerprint"].as_str()).collect();
    orphans.sort_unstable();
    // The root CA ACM appends to every chain has no owner either.
    let root = acm_root_fingerprint(&moto);
    let mut want = vec![acm_plain.fingerprint.as_str(), s_orphan.fingerprint.as_str(), root.as_str()];
    want.sort_unstable();
    assert_eq!(orphans, want);

    // Nothing changed: nothing is read.
    let again = scan(&sb, &TEST_KEYS);
    assert_eq!(again["run"]["objects_read"], 0, "{again}");

    // A secret's owner tag changes without a new version: ListSecrets says so, and only that
    // secret is read again.
    moto.py(&json!({}), "sm.tag_resource(SecretId='certs/orphan', Tags=[{'Key': 'certvigil.io/owner', 'Value': 'billing'}])\n");
    let third = scan(&sb, &TEST_KEYS);
    assert_eq!(third["run"]["objects_read"], 1, "{third}");
    assert_eq!(owner(&s_orphan.fingerprint)["name"], "billing");
}
