//! The rule engine's documents (spec §2.10): routing rules (`.../routing-rule/rules`) and their
//! actions (`.../routing-rule/actions`), with the checks CreateRoutingRule / CreateRuleAction
//! make. Pure: no I/O.
//!
//! Decisions where the spec is silent or ringiot is narrower than IoTDA:
//! - A new rule starts **inactive** (the documented flow is create rule → create action →
//!   activate with `PUT {"active": true}`).
//! - Only the `HTTP_FORWARDING` channel, to `http://` URLs, is offered; other channels and
//!   `https` are refused with a message saying so.
//! - `select` may be empty or `*` and `where` must be empty: SQL filtering is not built, and a
//!   filter silently ignored would push what the application asked not to get.
//! - `app_type` `GLOBAL` (default) or `APP`; with `APP`, `app_id` is required.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// The `resource:event` pairs of spec §2.10.
pub const SUBJECTS: &[(&str, &str)] = &[
    ("device", "create"),
    ("device", "delete"),
    ("device", "update"),
    ("device.status", "update"),
    ("device.property", "report"),
    ("device.message", "report"),
    ("device.message.status", "update"),
    ("batchtask", "update"),
    ("product", "create"),
    ("product", "delete"),
    ("product", "update"),
    ("device.command.status", "update"),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub resource: String,
    pub event: String,
}

/// A stored rule, as every rule API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub rule_id: String,
    pub rule_name: Option<String>,
    pub description: Option<String>,
    pub subject: Subject,
    pub app_type: String,
    pub app_id: Option<String>,
    pub select: Option<String>,
    #[serde(rename = "where")]
    pub where_: Option<String>,
    pub active: bool,
}

#[derive(Debug, Deserialize)]
pub struct CreateRuleRequest {
    pub rule_name: Option<String>,
    pub description: Option<String>,
    pub subject: Option<Subject>,
    pub app_type: Option<String>,
    pub app_id: Option<String>,
    pub select: Option<String>,
    #[serde(rename = "where")]
    pub where_: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateRuleRequest {
    pub rule_name: Option<String>,
    pub description: Option<String>,
    pub select: Option<String>,
    #[serde(rename = "where")]
    pub where_: Option<String>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpForwarding {
    pub url: String,
    /// Sent as `X-Push-Token` with every push (ringiot's choice: the spec leaves the signing of
    /// pushed requests unconfirmed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_enable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cn_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni_enable: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDetail {
    pub http_forwarding: Option<HttpForwarding>,
}

/// A stored action, as every action API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub action_id: String,
    pub rule_id: String,
    pub channel: String,
    pub channel_detail: ChannelDetail,
}

#[derive(Debug, Deserialize)]
pub struct CreateActionRequest {
    pub rule_id: Option<String>,
    pub channel: Option<String>,
    pub channel_detail: Option<ChannelDetail>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateActionRequest {
    pub channel: Option<String>,
    pub channel_detail: Option<ChannelDetail>,
}

fn bounded(field: &str, value: &Option<String>, max: usize) -> Result<(), ValidationError> {
    match value {
        Some(text) if text.chars().count() > max => {
            Err(ValidationError::new(field, format!("is longer than {max} characters")))
        }
        _ => Ok(()),
    }
}

fn check_filters(select: &Option<String>, where_: &Option<String>) -> Result<(), ValidationError> {
    if select.as_deref().is_some_and(|s| !s.trim().is_empty() && s.trim() != "*") {
        return Err(ValidationError::new("select", "SQL selection is not supported: leave it empty or '*'"));
    }
    if where_.as_deref().is_some_and(|w| !w.trim().is_empty()) {
        return Err(ValidationError::new("where", "SQL filtering is not supported: leave it empty"));
    }
    Ok(())
}

/// Checks CreateRoutingRule and makes the (inactive) rule.
pub fn validate_create_rule(request: CreateRuleRequest, rule_id: String) -> Result<Rule, ValidationError> {
    let subject = request.subject.ok_or_else(|| ValidationError::new("subject", "subject is required"))?;
    if !SUBJECTS.iter().any(|(r, e)| *r == subject.resource && *e == subject.event) {
        return Err(ValidationError::new(
            "subject",
            format!("unknown resource:event '{}:{}'", subject.resource, subject.event),
        ));
    }
    bounded("rule_name", &request.rule_name, 256)?;
    bounded("description", &request.description, 256)?;
    bounded("app_id", &request.app_id, 36)?;
    let app_type = request.app_type.unwrap_or_else(|| "GLOBAL".into());
    match app_type.as_str() {
        "GLOBAL" => {}
        "APP" if request.app_id.is_some() => {}
        "APP" => return Err(ValidationError::new("app_id", "app_id is required when app_type is APP")),
        other => return Err(ValidationError::new("app_type", format!("'{other}' is not GLOBAL or APP"))),
    }
    check_filters(&request.select, &request.where_)?;
    Ok(Rule {
        rule_id,
        rule_name: request.rule_name,
        description: request.description,
        subject,
        app_type,
        app_id: request.app_id,
        select: request.select,
        where_: request.where_,
        active: false,
    })
}

/// Applies UpdateRoutingRule to a stored rule.
pub fn apply_rule_update(mut rule: Rule, update: UpdateRuleRequest) -> Result<Rule, ValidationError> {
    bounded("rule_name", &update.rule_name, 256)?;
    bounded("description", &update.description, 256)?;
    check_filters(&update.select, &update.where_)?;
    rule.rule_name = update.rule_name.or(rule.rule_name);
    rule.description = update.description.or(rule.description);
    rule.select = update.select.or(rule.select);
    rule.where_ = update.where_.or(rule.where_);
    rule.active = update.active.unwrap_or(rule.active);
    Ok(rule)
}

fn check_channel(channel: &str, detail: &ChannelDetail) -> Result<(), ValidationError> {
    if channel != "HTTP_FORWARDING" {
        return Err(ValidationError::new(
            "channel",
            format!("channel '{channel}' is not supported; ringiot forwards with HTTP_FORWARDING only"),
        ));
    }
    let http = detail.http_forwarding.as_ref().ok_or_else(|| {
        ValidationError::new(
            "channel_detail.http_forwarding",
            "http_forwarding is required for HTTP_FORWARDING",
        )
    })?;
    check_url(&http.url)
        .map_err(|message| ValidationError::new("channel_detail.http_forwarding.url", message))?;
    if let Some(token) = &http.token {
        if !(3..=32).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ValidationError::new(
                "channel_detail.http_forwarding.token",
                "must be 3 to 32 letters or digits",
            ));
        }
    }
    Ok(())
}

/// An `http://host[:port][/path]` URL of at most 256 characters.
fn check_url(url: &str) -> Result<(), String> {
    if url.len() > 256 {
        return Err("is longer than 256 characters".into());
    }
    if url.starts_with("https://") {
        return Err("https is not supported yet; use an http:// URL".into());
    }
    let rest = url.strip_prefix("http://").ok_or("must start with http://")?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || authority.chars().any(char::is_whitespace) {
        return Err("has no valid host".into());
    }
    Ok(())
}

/// Checks CreateRuleAction and makes the action.
pub fn validate_create_action(
    request: CreateActionRequest,
    action_id: String,
) -> Result<Action, ValidationError> {
    let rule_id = request.rule_id.ok_or_else(|| ValidationError::new("rule_id", "rule_id is required"))?;
    let channel = request.channel.ok_or_else(|| ValidationError::new("channel", "channel is required"))?;
    let channel_detail = request
        .channel_detail
        .ok_or_else(|| ValidationError::new("channel_detail", "channel_detail is required"))?;
    check_channel(&channel, &channel_detail)?;
    Ok(Action { action_id, rule_id, channel, channel_detail })
}

/// Applies UpdateRuleAction to a stored action.
pub fn apply_action_update(
    mut action: Action,
    update: UpdateActionRequest,
) -> Result<Action, ValidationError> {
    action.channel = update.channel.unwrap_or(action.channel);
    action.channel_detail = update.channel_detail.unwrap_or(action.channel_detail);
    check_channel(&action.channel, &action.channel_detail)?;
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(subject: Option<(&str, &str)>) -> CreateRuleRequest {
        CreateRuleRequest {
            rule_name: Some("r".into()),
            description: None,
            subject: subject
                .map(|(resource, event)| Subject { resource: resource.into(), event: event.into() }),
            app_type: None,
            app_id: None,
            select: None,
            where_: None,
        }
    }

    #[test]
    fn rules_need_a_known_subject_and_start_inactive() {
        let rule =
            validate_create_rule(create(Some(("device.message.status", "update"))), "id".into()).unwrap();
        assert!(!rule.active);
        assert_eq!(rule.app_type, "GLOBAL");
        assert_eq!(validate_create_rule(create(None), "id".into()).unwrap_err().field, "subject");
        assert_eq!(
            validate_create_rule(create(Some(("device", "explode"))), "id".into()).unwrap_err().field,
            "subject"
        );
        let mut filtered = create(Some(("device.status", "update")));
        filtered.where_ = Some("status = 'ONLINE'".into());
        assert_eq!(validate_create_rule(filtered, "id".into()).unwrap_err().field, "where");
        let mut app = create(Some(("device.status", "update")));
        app.app_type = Some("APP".into());
        assert_eq!(validate_create_rule(app, "id".into()).unwrap_err().field, "app_id");
        let active = apply_rule_update(
            rule,
            UpdateRuleRequest {
                rule_name: None,
                description: None,
                select: None,
                where_: None,
                active: Some(true),
            },
        )
        .unwrap();
        assert!(active.active && active.rule_name.as_deref() == Some("r"));
    }

    #[test]
    fn actions_forward_over_http_only() {
        let action = |channel: &str, url: &str, token: Option<&str>| CreateActionRequest {
            rule_id: Some("r1".into()),
            channel: Some(channel.into()),
            channel_detail: Some(ChannelDetail {
                http_forwarding: Some(HttpForwarding {
                    url: url.into(),
                    token: token.map(Into::into),
                    signature_enable: None,
                    cert_id: None,
                    cn_name: None,
                    sni_enable: None,
                }),
            }),
        };
        assert!(validate_create_action(
            action("HTTP_FORWARDING", "http://127.0.0.1:9/cb", Some("abc123")),
            "a".into()
        )
        .is_ok());
        let field = |r: Result<Action, ValidationError>| r.unwrap_err().field;
        assert_eq!(
            field(validate_create_action(action("AMQP_FORWARDING", "http://h/", None), "a".into())),
            "channel"
        );
        assert_eq!(
            field(validate_create_action(action("HTTP_FORWARDING", "https://h/", None), "a".into())),
            "channel_detail.http_forwarding.url"
        );
        assert_eq!(
            field(validate_create_action(action("HTTP_FORWARDING", "ftp://h/", None), "a".into())),
            "channel_detail.http_forwarding.url"
        );
        assert_eq!(
            field(validate_create_action(action("HTTP_FORWARDING", "http://h/", Some("a!")), "a".into())),
            "channel_detail.http_forwarding.token"
        );
    }
}
