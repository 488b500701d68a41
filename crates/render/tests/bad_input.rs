//! Hostile or broken input: every case is a clear error, quickly, with
//! bounded memory — never a hang or a crash.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use pilothouse_render::{LoadRestrictions, RenderError, RenderOptions, render_dir};

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create dirs");
    }
    std::fs::write(path, text).expect("write file");
}

/// Renders and expects an error whose message contains every `needles`
/// entry; the render must also finish quickly.
fn check_error(dir: &Path, needles: &[&str]) -> RenderError {
    let started = Instant::now();
    let outcome = render_dir(dir, &RenderOptions::default());
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "render took {elapsed:?}, expected a quick error"
    );
    let err = match outcome {
        Ok(objects) => panic!("expected an error, rendered {} objects", objects.len()),
        Err(e) => e,
    };
    let text = err.to_string();
    for needle in needles {
        assert!(text.contains(needle), "error {text:?} lacks {needle:?}");
    }
    err
}

#[test]
fn malformed_yaml_names_the_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "kustomization.yaml", "resources: [bad.yaml]\n");
    write(
        tmp.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n",
    );
    let err = check_error(tmp.path(), &["bad.yaml", "invalid YAML", "line"]);
    assert!(matches!(err, RenderError::Yaml { .. }), "{err:?}");
}

#[test]
fn malformed_kustomization_names_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "kustomization.yaml", "resources: [a.yaml\n");
    check_error(tmp.path(), &["kustomization.yaml", "invalid YAML"]);
}

#[test]
fn alias_bomb_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "kustomization.yaml", "resources: [bomb.yaml]\n");
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "  a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    write(tmp.path(), "bomb.yaml", &bomb);
    check_error(tmp.path(), &["bomb.yaml", "alias"]);
}

#[test]
fn fifty_megabyte_file_is_refused_without_reading_it_all() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "kustomization.yaml", "resources: [huge.yaml]\n");
    let mut f = std::fs::File::create(tmp.path().join("huge.yaml")).expect("create");
    writeln!(
        f,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: huge}}\ndata:"
    )
    .expect("write");
    let line = format!("  k: {}\n", "x".repeat(1000));
    let mut written = 0usize;
    while written < 50 * 1024 * 1024 {
        f.write_all(line.as_bytes()).expect("write");
        written += line.len();
    }
    drop(f);
    let err = check_error(tmp.path(), &["huge.yaml", "limit"]);
    assert!(matches!(err, RenderError::TooLarge { .. }), "{err:?}");
}

#[test]
fn cycle_between_kustomizations_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "a/kustomization.yaml", "resources: [../b]\n");
    write(tmp.path(), "b/kustomization.yaml", "resources: [../c]\n");
    write(tmp.path(), "c/kustomization.yaml", "resources: [../a]\n");
    let err = check_error(&tmp.path().join("a"), &["cycle", "a", "b", "c"]);
    assert!(matches!(err, RenderError::Cycle { .. }), "{err:?}");
}

#[test]
fn kustomization_including_its_parent_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "kustomization.yaml", "resources: []\n");
    write(tmp.path(), "sub/kustomization.yaml", "resources: [..]\n");
    check_error(&tmp.path().join("sub"), &["cycle"]);
}

#[cfg(unix)]
#[test]
fn symlink_escaping_the_root_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "secret/passwd.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\n",
    );
    write(
        tmp.path(),
        "app/kustomization.yaml",
        "resources: [innocent.yaml]\n",
    );
    std::os::unix::fs::symlink(
        tmp.path().join("secret/passwd.yaml"),
        tmp.path().join("app/innocent.yaml"),
    )
    .expect("symlink");
    let err = check_error(
        &tmp.path().join("app"),
        &["innocent.yaml", "outside the kustomization root"],
    );
    assert!(matches!(err, RenderError::OutsideRoot { .. }), "{err:?}");
}

#[cfg(unix)]
#[test]
fn symlinked_kustomization_file_escaping_the_root_is_refused() {
    // kubectl kustomize refuses it too
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "outside/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\n",
    );
    write(
        tmp.path(),
        "outside/kustomization.yaml",
        "resources: [cm.yaml]\n",
    );
    std::fs::create_dir_all(tmp.path().join("app")).expect("dir");
    std::os::unix::fs::symlink(
        tmp.path().join("outside/kustomization.yaml"),
        tmp.path().join("app/kustomization.yaml"),
    )
    .expect("symlink");
    let err = check_error(
        &tmp.path().join("app"),
        &["kustomization.yaml", "outside the kustomization root"],
    );
    assert!(matches!(err, RenderError::OutsideRoot { .. }), "{err:?}");
    // a link that stays inside its directory is read
    write(
        tmp.path(),
        "inside/real/kustomization.yaml",
        "resources: [cm.yaml]\n",
    );
    write(
        tmp.path(),
        "inside/real/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n",
    );
    std::os::unix::fs::symlink(
        "real/kustomization.yaml",
        tmp.path().join("inside/kustomization.yaml"),
    )
    .expect("symlink");
    // the resource is relative to inside/, where cm.yaml is not: kustomize
    // reads the linked file's text as inside/'s kustomization
    write(
        tmp.path(),
        "inside/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n",
    );
    let objects = render_dir(&tmp.path().join("inside"), &RenderOptions::default())
        .expect("a link inside the root is fine");
    assert_eq!(objects.len(), 1);
}

#[test]
fn confined_renders_stay_inside_the_boundary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // another kustomization on the host, outside the repository
    write(
        tmp.path(),
        "elsewhere/kustomization.yaml",
        "resources: [cm.yaml]\n",
    );
    write(
        tmp.path(),
        "elsewhere/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\n",
    );
    write(
        tmp.path(),
        "repo/overlays/aks/kustomization.yaml",
        "resources: [../../../elsewhere]\n",
    );
    let dir = tmp.path().join("repo/overlays/aks");
    // kustomize itself allows directories anywhere
    render_dir(&dir, &RenderOptions::default()).expect("unconfined");
    let confined = RenderOptions {
        confine_to: Some(tmp.path().join("repo")),
        ..RenderOptions::default()
    };
    let err = render_dir(&dir, &confined).expect_err("confined");
    assert!(matches!(err, RenderError::OutsideRoot { .. }), "{err:?}");
    assert!(err.to_string().contains("elsewhere"), "{err}");
    let outside = render_dir(&tmp.path().join("elsewhere"), &confined).expect_err("outside");
    assert!(
        matches!(outside, RenderError::OutsideRoot { .. }),
        "{outside:?}"
    );
}

#[test]
fn load_restrictions_off_still_stay_inside_the_boundary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "repo/shared/patch.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {shared: \"yes\"}\n",
    );
    write(tmp.path(), "secret.env", "TOKEN=host-secret\n");
    write(
        tmp.path(),
        "repo/app/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    write(
        tmp.path(),
        "repo/app/kustomization.yaml",
        "resources: [cm.yaml]\npatches:\n- path: ../shared/patch.yaml\n",
    );
    let dir = tmp.path().join("repo/app");
    // kustomize's default: files only below the kustomization
    let err = render_dir(&dir, &RenderOptions::default()).expect_err("root only");
    assert!(matches!(err, RenderError::OutsideRoot { .. }), "{err:?}");
    let unrestricted = RenderOptions {
        load_restrictions: LoadRestrictions::None,
        confine_to: Some(tmp.path().join("repo")),
        ..RenderOptions::default()
    };
    let objects = render_dir(&dir, &unrestricted).expect("restrictions off");
    assert_eq!(objects[0]["data"]["shared"], "yes");
    // ... but never outside the checkout
    write(
        tmp.path(),
        "repo/app/kustomization.yaml",
        "configMapGenerator:\n- name: g\n  envs: [../../secret.env]\n",
    );
    let err = render_dir(&dir, &unrestricted).expect_err("outside the checkout");
    assert!(matches!(err, RenderError::OutsideRoot { .. }), "{err:?}");
}

#[cfg(unix)]
#[test]
fn symlinked_generator_file_escaping_the_root_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "outside.env", "A=1\n");
    write(
        tmp.path(),
        "app/kustomization.yaml",
        "configMapGenerator:\n- name: c\n  envs: [link.env]\n",
    );
    std::os::unix::fs::symlink(
        tmp.path().join("outside.env"),
        tmp.path().join("app/link.env"),
    )
    .expect("symlink");
    check_error(
        &tmp.path().join("app"),
        &["link.env", "outside the kustomization root"],
    );
}

#[test]
fn deep_nesting_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "kustomization.yaml", "resources: [deep.yaml]\n");
    let depth = 100_000;
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep}}\ndata: {{a: {}{}}}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    write(tmp.path(), "deep.yaml", &text);
    check_error(tmp.path(), &["deep.yaml", "invalid YAML"]);
}

#[test]
fn unsupported_fields_are_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "kustomization.yaml",
        "vars:\n- name: X\n  objref: {kind: Service, name: s, apiVersion: v1}\n",
    );
    // A var naming no resource is kustomize's error too.
    let err = check_error(tmp.path(), &["vars", "cannot be mapped"]);
    assert!(matches!(err, RenderError::Transform { .. }), "{err:?}");

    write(tmp.path(), "kustomization.yaml", "helmCharts:\n- name: x\n");
    check_error(tmp.path(), &["helmCharts", "not supported"]);

    // External (exec or KRM function) plugins are named, never run.
    write(tmp.path(), "kustomization.yaml", "transformers: [t.yaml]\n");
    write(
        tmp.path(),
        "t.yaml",
        "apiVersion: example.com/v1\nkind: SopsDecrypter\nmetadata: {name: x}\n",
    );
    check_error(tmp.path(), &["transformers", "SopsDecrypter", "external"]);
}

#[test]
fn env_file_values_from_the_environment_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "kustomization.yaml",
        "configMapGenerator:\n- name: c\n  envs: [a.env]\n",
    );
    write(tmp.path(), "a.env", "HOME\n");
    check_error(tmp.path(), &["a.env", "environment"]);
}

#[test]
fn missing_directory_is_an_io_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    check_error(&tmp.path().join("nope"), &["nope"]);
}
