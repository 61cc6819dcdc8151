//! Cedar authorization: who may do what to which model.
//!
//! Deny by default, and fail closed: Cedar skips a policy whose evaluation errors, which could
//! let a request through that a broken `forbid` was meant to stop, so any evaluation error here
//! turns the decision into a denial.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, Request,
    RestrictedExpression,
};

use crate::config::Config;
use crate::error::PolicyError;

const BUILTIN: &str = include_str!("../policies/builtin.cedar");

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A Rampart API key.
    Key {
        /// The key's public id.
        id: String,
        /// Who the key belongs to (a user name).
        owner: String,
        /// Models the key may call; empty means all (unless `admin`).
        models: Vec<String>,
        /// The key is an admin credential (member of group `admins`, no inference).
        admin: bool,
    },
    /// A user signed in through OIDC.
    User {
        /// The user claim (usually `sub`).
        id: String,
        /// Groups from the token's groups claim.
        groups: Vec<String>,
    },
}

impl Principal {
    /// The user this principal acts for: a key's owner or the OIDC subject.
    pub fn user(&self) -> &str {
        match self {
            Principal::Key { owner, .. } => owner,
            Principal::User { id, .. } => id,
        }
    }

    /// `key:ID` or `user:NAME`: how logs, the ledger, limits and approvals name a principal.
    pub fn label(&self) -> String {
        match self {
            Principal::Key { id, .. } => format!("key:{id}"),
            Principal::User { id, .. } => format!("user:{id}"),
        }
    }
}

/// What is being done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions`.
    Complete,
    /// `POST /v1/embeddings`.
    Embed,
    /// Create, list or revoke keys.
    AdminKeys,
    /// Block or unblock keys, users or models.
    AdminBlock,
    /// Reload the configuration.
    AdminReload,
    /// Read admin state (status, blocks, keys list, audit metadata).
    AdminRead,
    /// Read decrypted audit payloads, erase a data subject, sign checkpoints.
    AdminAudit,
    /// Approve or deny held tool calls.
    AdminApprove,
    /// An agent's tool call (resource `Rampart::Tool`), decided by [`PolicyEngine::authorize_tool`].
    ToolCall,
}

impl Action {
    /// Every action, for building the action hierarchy.
    pub const ALL: [Action; 10] = [
        Action::Chat,
        Action::Complete,
        Action::Embed,
        Action::AdminKeys,
        Action::AdminBlock,
        Action::AdminReload,
        Action::AdminRead,
        Action::AdminAudit,
        Action::AdminApprove,
        Action::ToolCall,
    ];

    /// The Cedar action id.
    pub fn id(self) -> &'static str {
        match self {
            Action::Chat => "chat",
            Action::Complete => "complete",
            Action::Embed => "embed",
            Action::AdminKeys => "admin.keys",
            Action::AdminBlock => "admin.block",
            Action::AdminReload => "admin.reload",
            Action::AdminRead => "admin.read",
            Action::AdminAudit => "admin.audit",
            Action::AdminApprove => "admin.approve",
            Action::ToolCall => "tool.call",
        }
    }

    fn group(self) -> &'static str {
        match self {
            Action::Chat | Action::Complete | Action::Embed => "infer",
            Action::ToolCall => "agent",
            _ => "admin",
        }
    }

    /// Whether the resource is a model (otherwise it is the gateway).
    pub fn is_inference(self) -> bool {
        self.group() == "infer"
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.id() == s)
            .ok_or_else(|| format!("unknown action `{s}`"))
    }
}

/// The outcome of one authorization, with what it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    allowed: bool,
    /// Ids of the policies that decided (permits when allowed, forbids when denied).
    pub policies: Vec<String>,
    /// Evaluation errors; any error denies.
    pub errors: Vec<String>,
}

impl Decision {
    /// Whether the request may go on.
    pub fn allowed(&self) -> bool {
        self.allowed
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "ALLOW" } else { "DENY" };
        write!(f, "{verdict}")?;
        if self.policies.is_empty() {
            if !self.allowed {
                write!(f, " (no policy permits this request)")?;
            }
        } else {
            write!(f, " (by {})", self.policies.join(", "))?;
        }
        for e in &self.errors {
            write!(f, "\n  error: {e}")?;
        }
        Ok(())
    }
}

/// A tool call as Cedar sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolRequest {
    /// The tool's name.
    pub tool: String,
    /// Its risk class.
    pub class: String,
    /// The model that proposed the call.
    pub model: String,
    /// Untrusted content is in the exchange.
    pub tainted: bool,
    /// The call's arguments, for policies that read `context.arguments` (numbers that are not
    /// integers become strings and nulls are left out: Cedar has neither).
    pub arguments: Option<serde_json::Value>,
}

/// An evaluation that failed: denied, with the error.
fn denial(e: String) -> Decision {
    Decision {
        allowed: false,
        policies: vec![],
        errors: vec![e],
    }
}

/// JSON as Cedar can hold it: non-integer numbers as strings, nulls left out.
fn cedar_value(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.as_i64().is_none() => Value::String(n.to_string()),
        Value::Array(a) => Value::Array(a.iter().filter(|x| !x.is_null()).map(cedar_value).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), cedar_value(x)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Entity type names, parsed once (parsing Cedar names per request would cost more than the
/// evaluation itself).
struct Types {
    key: EntityTypeName,
    user: EntityTypeName,
    group: EntityTypeName,
    model: EntityTypeName,
    tool: EntityTypeName,
    gateway: EntityUid,
    admins: EntityUid,
}

/// Decisions already taken by this engine. A decision depends only on the policies (fixed for
/// the engine's life: a reload builds a new engine), the principal with all its attributes,
/// the action and the model; the context is empty. So a decision can be reused as is, which
/// takes Cedar (tens of microseconds) off the hot path for repeat callers.
type DecisionCache = RwLock<HashMap<(Principal, Action, String), Decision>>;

/// Entries kept before the cache starts over (bounds memory under many distinct callers).
const CACHE_LIMIT: usize = 65_536;

impl Types {
    fn new() -> Result<Types, String> {
        let ty = |s: &str| EntityTypeName::from_str(s).map_err(|e| e.to_string());
        Ok(Types {
            key: ty("Rampart::Key")?,
            user: ty("Rampart::User")?,
            group: ty("Rampart::Group")?,
            model: ty("Rampart::Model")?,
            tool: ty("Rampart::Tool")?,
            gateway: uid("Rampart::Gateway", "admin")?,
            admins: uid("Rampart::Group", "admins")?,
        })
    }
}

/// Action entities: each action is a child of its group (`infer` or `admin`).
type ActionHierarchy = (Vec<Entity>, HashMap<Action, EntityUid>);

fn action_hierarchy() -> Result<ActionHierarchy, String> {
    let mut entities = Vec::new();
    let mut uids = HashMap::new();
    for group in ["infer", "admin", "agent"] {
        entities.push(Entity::new_no_attrs(uid("Rampart::Action", group)?, HashSet::new()));
    }
    for a in Action::ALL {
        let parents = HashSet::from([uid("Rampart::Action", a.group())?]);
        let id = uid("Rampart::Action", a.id())?;
        entities.push(Entity::new_no_attrs(id.clone(), parents));
        uids.insert(a, id);
    }
    Ok((entities, uids))
}

/// A compiled Cedar policy set plus Rampart's entity model.
pub struct PolicyEngine {
    policies: PolicySet,
    authorizer: Authorizer,
    action_entities: Vec<Entity>,
    action_uids: HashMap<Action, EntityUid>,
    types: Types,
    cache: DecisionCache,
    /// Some policy reads `context.arguments`: tool decisions then depend on the arguments and
    /// are not cached.
    reads_arguments: bool,
}

impl fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("policies", &self.policies.policies().count())
            .finish()
    }
}

fn uid(ty: &str, id: &str) -> Result<EntityUid, String> {
    let ty = EntityTypeName::from_str(ty).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

fn of(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

impl PolicyEngine {
    /// Builds the engine from the built-in policies and the config's policy files.
    /// `read` loads a file (a trait seam so tests need no files).
    pub fn from_config(config: &Config, read: impl Fn(&str) -> std::io::Result<String>) -> Result<Self, PolicyError> {
        let mut sources: Vec<(String, String)> = Vec::new();
        if !config.policy.replace_builtin {
            sources.push(("built-in".into(), BUILTIN.into()));
        }
        for path in &config.policy.files {
            let text = read(path).map_err(|e| PolicyError::Read {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            sources.push((path.clone(), text));
        }
        Self::from_sources(&sources)
    }

    /// Builds the engine from named policy texts.
    pub fn from_sources(sources: &[(String, String)]) -> Result<Self, PolicyError> {
        let mut policies = PolicySet::new();
        for (name, text) in sources {
            let parsed = PolicySet::from_str(text).map_err(|e| PolicyError::Parse {
                source_name: name.clone(),
                reason: format!("{e:?}").chars().take(2000).collect(),
            })?;
            for (n, policy) in parsed.policies().enumerate() {
                let id = policy
                    .annotation("id")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{name}#{n}"));
                let renamed: Policy = policy.new_id(PolicyId::new(&id));
                policies.add(renamed).map_err(|e| PolicyError::Parse {
                    source_name: name.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        let built = action_hierarchy().and_then(|(entities, uids)| Ok((entities, uids, Types::new()?)));
        let (action_entities, action_uids, types) = built.map_err(|reason| PolicyError::Parse {
            source_name: "built-in".into(),
            reason,
        })?;
        Ok(PolicyEngine {
            policies,
            authorizer: Authorizer::new(),
            action_entities,
            action_uids,
            types,
            cache: RwLock::new(HashMap::new()),
            reads_arguments: sources.iter().any(|(_, t)| t.contains("context.arguments")),
        })
    }

    /// How many policies are loaded.
    pub fn len(&self) -> usize {
        self.policies.policies().count()
    }

    /// Whether no policy is loaded (everything is then denied).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides whether `principal` may do `action` on `model` (ignored for admin actions).
    pub fn authorize(&self, principal: &Principal, action: Action, model: &str) -> Decision {
        let model = if action.is_inference() { model } else { "" };
        let key = (principal.clone(), action, model.to_string());
        self.cached(key, || self.try_authorize(principal, action, model))
    }

    /// The cached decision for `key`, or `decide`'s (an evaluation error denies), cached.
    fn cached(&self, key: (Principal, Action, String), decide: impl FnOnce() -> Result<Decision, String>) -> Decision {
        if let Some(d) = self.cache.read().ok().and_then(|c| c.get(&key).cloned()) {
            return d;
        }
        let decision = decide().unwrap_or_else(denial);
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key, decision.clone());
        }
        decision
    }

    /// Decides whether `principal` may make this tool call. Cedar sees the tool (`name`,
    /// `class`) as the resource and `{model, class, tainted}` as the context.
    pub fn authorize_tool(&self, principal: &Principal, call: &ToolRequest) -> Decision {
        if self.reads_arguments && call.arguments.is_some() {
            return self.try_authorize_tool(principal, call).unwrap_or_else(denial);
        }
        let key = (
            principal.clone(),
            Action::ToolCall,
            format!("{}\0{}\0{}\0{}", call.tool, call.class, call.model, call.tainted),
        );
        self.cached(key, || self.try_authorize_tool(principal, call))
    }

    fn try_authorize_tool(&self, principal: &Principal, call: &ToolRequest) -> Result<Decision, String> {
        let t = &self.types;
        let mut entities: Vec<Entity> = Vec::with_capacity(self.action_entities.len() + 4);
        entities.extend(self.action_entities.iter().cloned());
        let principal_uid = self.principal_entities(principal, &mut entities)?;
        let resource = of(&t.tool, &call.tool);
        let attrs = HashMap::from([
            ("name".to_string(), RestrictedExpression::new_string(call.tool.clone())),
            (
                "class".to_string(),
                RestrictedExpression::new_string(call.class.clone()),
            ),
        ]);
        entities.push(Entity::new(resource.clone(), attrs, HashSet::new()).map_err(|e| e.to_string())?);
        let mut ctx = serde_json::json!({"model": call.model, "class": call.class, "tainted": call.tainted});
        if self.reads_arguments {
            ctx["arguments"] = call
                .arguments
                .as_ref()
                .map_or_else(|| serde_json::json!({}), cedar_value);
        }
        let context = Context::from_json_value(ctx, None).map_err(|e| e.to_string())?;
        self.decide(principal_uid, Action::ToolCall, resource, context, entities)
    }

    /// The principal's entity (and its owner or groups), added to `entities`.
    fn principal_entities(&self, principal: &Principal, entities: &mut Vec<Entity>) -> Result<EntityUid, String> {
        let t = &self.types;
        Ok(match principal {
            Principal::Key {
                id,
                owner,
                models,
                admin,
            } => {
                let key = of(&t.key, id);
                let owner_uid = of(&t.user, owner);
                let mut parents = HashSet::from([owner_uid.clone()]);
                if *admin {
                    parents.insert(t.admins.clone());
                }
                let attrs = HashMap::from([
                    ("owner".to_string(), RestrictedExpression::new_string(owner.clone())),
                    (
                        "models".to_string(),
                        RestrictedExpression::new_set(models.iter().cloned().map(RestrictedExpression::new_string)),
                    ),
                    (
                        "all_models".to_string(),
                        RestrictedExpression::new_bool(models.is_empty() && !*admin),
                    ),
                    ("admin".to_string(), RestrictedExpression::new_bool(*admin)),
                ]);
                entities.push(Entity::new(key.clone(), attrs, parents).map_err(|e| e.to_string())?);
                entities.push(Entity::new_no_attrs(owner_uid, HashSet::new()));
                key
            }
            Principal::User { id, groups } => {
                let user = of(&t.user, id);
                let mut parents = HashSet::new();
                for g in groups {
                    let g = of(&t.group, g);
                    if parents.insert(g.clone()) {
                        entities.push(Entity::new_no_attrs(g, HashSet::new()));
                    }
                }
                entities.push(Entity::new_no_attrs(user.clone(), parents));
                user
            }
        })
    }

    fn decide(
        &self,
        principal: EntityUid,
        action: Action,
        resource: EntityUid,
        context: Context,
        entities: Vec<Entity>,
    ) -> Result<Decision, String> {
        let entities = Entities::from_entities(entities, None).map_err(|e| e.to_string())?;
        let action_uid = self
            .action_uids
            .get(&action)
            .cloned()
            .ok_or_else(|| format!("unknown action `{}`", action.id()))?;
        let request = Request::new(principal, action_uid, resource, context, None).map_err(|e| e.to_string())?;
        let response = self.authorizer.is_authorized(&request, &self.policies, &entities);
        let diagnostics = response.diagnostics();
        let errors: Vec<String> = diagnostics.errors().map(|e| e.to_string()).collect();
        let policies: Vec<String> = diagnostics.reason().map(|p| p.to_string()).collect();
        let allowed = response.decision() == cedar_policy::Decision::Allow && errors.is_empty();
        Ok(Decision {
            allowed,
            policies,
            errors,
        })
    }

    fn try_authorize(&self, principal: &Principal, action: Action, model: &str) -> Result<Decision, String> {
        let t = &self.types;
        let mut entities: Vec<Entity> = Vec::with_capacity(self.action_entities.len() + 4);
        entities.extend(self.action_entities.iter().cloned());
        let principal_uid = self.principal_entities(principal, &mut entities)?;
        let resource = if action.is_inference() {
            let r = of(&t.model, model);
            let attrs = HashMap::from([("name".to_string(), RestrictedExpression::new_string(model.to_string()))]);
            entities.push(Entity::new(r.clone(), attrs, HashSet::new()).map_err(|e| e.to_string())?);
            r
        } else {
            entities.push(Entity::new_no_attrs(t.gateway.clone(), HashSet::new()));
            t.gateway.clone()
        };
        self.decide(principal_uid, action, resource, Context::empty(), entities)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(extra: &str) -> PolicyEngine {
        let mut sources = vec![("built-in".to_string(), BUILTIN.to_string())];
        if !extra.is_empty() {
            sources.push(("extra.cedar".into(), extra.into()));
        }
        PolicyEngine::from_sources(&sources).unwrap()
    }

    fn key(models: &[&str]) -> Principal {
        Principal::Key {
            id: "k1".into(),
            owner: "alice".into(),
            models: models.iter().map(|s| s.to_string()).collect(),
            admin: false,
        }
    }

    #[test]
    fn key_is_limited_to_its_models() {
        let e = engine("");
        assert!(e.authorize(&key(&["a"]), Action::Chat, "a").allowed());
        let d = e.authorize(&key(&["a"]), Action::Chat, "b");
        assert!(!d.allowed());
        assert!(e.authorize(&key(&[]), Action::Embed, "b").allowed());
    }

    #[test]
    fn plain_keys_cannot_administer_and_admins_cannot_infer() {
        let e = engine("");
        assert!(!e.authorize(&key(&[]), Action::AdminBlock, "").allowed());
        let admin = Principal::Key {
            id: "adm".into(),
            owner: "admin".into(),
            models: vec![],
            admin: true,
        };
        let d = e.authorize(&admin, Action::AdminBlock, "");
        assert!(d.allowed(), "{d}");
        assert_eq!(d.policies, vec!["admins-administer".to_string()]);
        assert!(!e.authorize(&admin, Action::Chat, "m").allowed());
    }

    #[test]
    fn forbid_wins_and_is_named() {
        let e = engine("@id(\"no-interns-on-big\")\nforbid(principal in Rampart::Group::\"interns\", action, resource == Rampart::Model::\"big\");");
        let intern = Principal::User {
            id: "bob".into(),
            groups: vec!["interns".into()],
        };
        let d = e.authorize(&intern, Action::Chat, "big");
        assert!(!d.allowed());
        assert_eq!(d.policies, vec!["no-interns-on-big".to_string()]);
        assert!(e.authorize(&intern, Action::Chat, "small").allowed());
    }

    #[test]
    fn erroring_forbid_denies() {
        // `principal.nope` errors for every principal: Cedar would skip it; Rampart denies.
        let e = engine("@id(\"broken\")\nforbid(principal, action, resource) when { principal.nope == 1 };");
        let d = e.authorize(&key(&[]), Action::Chat, "a");
        assert!(!d.allowed());
        assert!(!d.errors.is_empty());
    }

    #[test]
    fn cached_decisions_follow_every_attribute() {
        let e = engine("");
        for _ in 0..2 {
            assert!(e.authorize(&key(&["a"]), Action::Chat, "a").allowed());
            assert!(!e.authorize(&key(&["b"]), Action::Chat, "a").allowed());
            let admin = Principal::Key {
                id: "k1".into(),
                owner: "alice".into(),
                models: vec![],
                admin: true,
            };
            assert!(!e.authorize(&admin, Action::Chat, "a").allowed());
            assert!(e.authorize(&key(&[]), Action::Chat, "a").allowed());
        }
    }

    #[test]
    fn tool_calls_are_permitted_unless_a_forbid_names_them() {
        let e = engine(
            "@id(\"no-egress-when-tainted\")\nforbid(principal, action == Rampart::Action::\"tool.call\", resource) when { context.tainted && resource.class == \"egress\" };",
        );
        let call = |tainted| ToolRequest {
            tool: "http_get".into(),
            class: "egress".into(),
            model: "m".into(),
            tainted,
            arguments: None,
        };
        assert!(e.authorize_tool(&key(&[]), &call(false)).allowed());
        let d = e.authorize_tool(&key(&[]), &call(true));
        assert!(!d.allowed());
        assert_eq!(d.policies, vec!["no-egress-when-tainted".to_string()]);
    }

    #[test]
    fn policies_can_read_a_tool_calls_arguments() {
        let e = engine(
            "@id(\"small-refunds\")\nforbid(principal, action == Rampart::Action::\"tool.call\", resource == Rampart::Tool::\"refund\") when { context.arguments.amount > 100 };",
        );
        let call = |amount: serde_json::Value| ToolRequest {
            tool: "refund".into(),
            class: "payment".into(),
            model: "m".into(),
            tainted: false,
            arguments: Some(serde_json::json!({"amount": amount, "note": null, "rate": 1.5})),
        };
        assert!(e.authorize_tool(&key(&[]), &call(serde_json::json!(50))).allowed());
        let d = e.authorize_tool(&key(&[]), &call(serde_json::json!(500)));
        assert!(!d.allowed());
        assert_eq!(d.policies, vec!["small-refunds".to_string()]);
    }

    #[test]
    fn owner_policies_apply_to_their_keys() {
        let e = engine("@id(\"alice-out\")\nforbid(principal in Rampart::User::\"alice\", action, resource);");
        assert!(!e.authorize(&key(&[]), Action::Chat, "a").allowed());
    }
}
