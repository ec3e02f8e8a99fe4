//! The default project: with no `[[projects]]` configured, the first start creates one with a
//! random token and AK/SK, keeps it in `{data_dir}/default-project.toml` (mode 0600), and later
//! starts reuse it. The credentials are printed once, on creation, to stdout — never to the log.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{AccessKeyConfig, Config, ProjectConfig};

pub const DEFAULT_PROJECT_FILE: &str = "default-project.toml";

#[derive(serde::Deserialize, serde::Serialize)]
struct DefaultProjectFile {
    projects: Vec<ProjectConfig>,
}

/// What happened to the default project at this start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultProject {
    /// Projects come from the config; nothing was done.
    Configured,
    Created(PathBuf),
    Loaded(PathBuf),
}

/// Fills `config.projects` with the default project when the config names none.
pub fn ensure_projects(config: &mut Config) -> std::io::Result<DefaultProject> {
    if !config.projects.is_empty() {
        return Ok(DefaultProject::Configured);
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let path = config.data_dir.join(DEFAULT_PROJECT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let file: DefaultProjectFile = toml::from_str(&text).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?;
            if file.projects.is_empty() {
                let message =
                    format!("{} names no project; delete it to make a new default project", path.display());
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message));
            }
            config.projects = file.projects;
            Ok(DefaultProject::Loaded(path))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let project = ProjectConfig {
                project_id: crate::random::hex(32),
                tokens: vec![crate::random::alphanumeric(40)],
                access_keys: vec![AccessKeyConfig {
                    ak: crate::random::alphanumeric(20).to_uppercase(),
                    sk: crate::random::alphanumeric(40),
                }],
            };
            write_private(&path, &DefaultProjectFile { projects: vec![project.clone()] })?;
            config.projects = vec![project];
            Ok(DefaultProject::Created(path))
        }
        Err(error) => Err(error),
    }
}

fn write_private(path: &Path, file: &DefaultProjectFile) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let text = toml::to_string(file).map_err(std::io::Error::other)?;
    let temp = path.with_extension("toml.tmp");
    let mut out =
        std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&temp)?;
    writeln!(out, "# The default project, made at first start because the config names none.")?;
    writeln!(out, "# Keep it secret. Configure [[projects]] instead to choose your own credentials.")?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&temp, path)
}

/// The lines printed when the default project is created: how to call the API right away.
/// Where the REST API listens, for the lines printed at start.
#[derive(Debug, Clone, Copy)]
pub struct RestAddresses<'a> {
    pub http: Option<std::net::SocketAddr>,
    pub https: Option<std::net::SocketAddr>,
    /// The generated CA (none when the operator configured the certificate).
    pub ca_file: Option<&'a Path>,
}

pub fn welcome_text(config: &Config, rest: &RestAddresses<'_>) -> String {
    let project = &config.projects[0];
    let token = project.tokens.first().map(String::as_str).unwrap_or_default();
    let (ak, sk) = project.access_keys.first().map(|k| (k.ak.as_str(), k.sk.as_str())).unwrap_or_default();
    let project_id = &project.project_id;
    let mut text = format!(
        "Created a default project (kept in {dir}/{DEFAULT_PROJECT_FILE}):\n  \
         project_id: {project_id}\n  token:      {token}\n  AK / SK:    {ak} / {sk}\nTry it:\n",
        dir = config.data_dir.display(),
    );
    if let Some(http) = rest.http {
        text += &format!(
            "  curl -H 'X-Auth-Token: {token}' http://127.0.0.1:{}/v5/iot/{project_id}/products\n",
            http.port()
        );
    }
    let console = match (rest.http, rest.https) {
        (Some(http), _) => Some(format!("http://127.0.0.1:{}", http.port())),
        (None, Some(https)) => Some(format!("https://localhost:{}", https.port())),
        (None, None) => None,
    };
    if let Some(https) = rest.https {
        let ca = rest.ca_file.map(|ca| format!("--cacert {} ", ca.display())).unwrap_or_default();
        text += &format!(
            "  curl {ca}-H 'X-Auth-Token: {token}' https://localhost:{}/v5/iot/{project_id}/products\n",
            https.port()
        );
    }
    if let Some(base) = console {
        text += &format!("Console: {base}/console/ (sign in with the project id and token above)\n");
    }
    text
}

/// Where the TLS listeners are and, for a generated certificate, the CA to give devices and
/// REST clients; empty when both TLS listeners are off.
pub fn tls_text(mqtt_tls: Option<std::net::SocketAddr>, rest: &RestAddresses<'_>) -> String {
    if mqtt_tls.is_none() && rest.https.is_none() {
        return String::new();
    }
    let shown = |address: Option<std::net::SocketAddr>| address.map_or("off".to_owned(), |a| a.to_string());
    let mut text = format!("TLS: MQTT on {}, HTTPS on {}\n", shown(mqtt_tls), shown(rest.https));
    if let Some(ca) = rest.ca_file {
        text += &format!("  CA certificate for devices and REST clients: {}\n", ca.display());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config { data_dir: dir.path().into(), ..Config::default() };
        assert!(matches!(ensure_projects(&mut config).unwrap(), DefaultProject::Created(_)));
        let first = config.projects.clone();
        assert_eq!(first[0].project_id.len(), 32);
        let mut again = Config { data_dir: dir.path().into(), ..Config::default() };
        assert!(matches!(ensure_projects(&mut again).unwrap(), DefaultProject::Loaded(_)));
        assert_eq!(again.projects, first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(DEFAULT_PROJECT_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let rest = RestAddresses {
            http: Some("127.0.0.1:8080".parse().unwrap()),
            https: Some("127.0.0.1:8443".parse().unwrap()),
            ca_file: Some(Path::new("/data/tls/ca.pem")),
        };
        let text = welcome_text(&again, &rest);
        assert!(text.contains(&format!("http://127.0.0.1:8080/v5/iot/{}/products", first[0].project_id)));
        assert!(text.contains(&format!(
            "curl --cacert /data/tls/ca.pem -H 'X-Auth-Token: {}' https://localhost:8443/v5/iot/{}/products",
            first[0].tokens[0], first[0].project_id
        )));
    }

    #[test]
    fn configured_projects_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let project =
            ProjectConfig { project_id: "p1".into(), tokens: vec!["t1".into()], access_keys: vec![] };
        let mut config = Config { data_dir: dir.path().into(), projects: vec![project], ..Config::default() };
        assert_eq!(ensure_projects(&mut config).unwrap(), DefaultProject::Configured);
        assert!(!dir.path().join(DEFAULT_PROJECT_FILE).exists());
    }
}
