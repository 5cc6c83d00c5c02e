//! The API contract as tests see it: `/openapi.json` (the document the API serves) and a check of a
//! received response against it — the operation and status must be documented and a JSON body must
//! match the documented schema. The `/v1` tests route every response through [`Contract::check`].

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use serde_json::{Value, json};

/// The parsed document, with compiled validators cached per schema location.
pub struct Contract {
    doc: Value,
    validators: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

static CONTRACT: LazyLock<Contract> = LazyLock::new(|| Contract {
    doc: serde_json::from_str(mingus_api::openapi::DOCUMENT).expect("openapi.json is JSON"),
    validators: Mutex::default(),
});

/// The contract of this build's API.
pub fn contract() -> &'static Contract {
    &CONTRACT
}

impl Contract {
    pub fn document(&self) -> &Value {
        &self.doc
    }

    /// Every documented operation: (method in upper case, path template).
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    found.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        found
    }

    /// The documented path template a concrete path matches (`/v1/api-keys/1b4…` → `/v1/api-keys/{id}`).
    pub fn template(&self, path: &str) -> Option<String> {
        let path = path.split('?').next().unwrap_or(path);
        let wanted: Vec<&str> = path.split('/').collect();
        let paths = self.doc["paths"].as_object()?;
        // Literal segments beat parameters, as in the router.
        let mut best: Option<(usize, &String)> = None;
        for template in paths.keys() {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != wanted.len() {
                continue;
            }
            let mut literal = 0;
            let matches = parts.iter().zip(&wanted).all(|(p, w)| {
                if p.starts_with('{') && p.ends_with('}') {
                    !w.is_empty()
                } else {
                    literal += 1;
                    p == w
                }
            });
            if matches && best.is_none_or(|(n, _)| literal > n) {
                best = Some((literal, template));
            }
        }
        best.map(|(_, t)| t.clone())
    }

    /// Checks one response: `Err` says what does not match the document.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &str,
    ) -> Result<(), String> {
        // What the document does not name must not be served: 404 for a path, 405 for a method.
        let Some(template) = self.template(path) else {
            return match status {
                404 => Ok(()),
                _ => Err(format!(
                    "{method} {path}: path not in /openapi.json ({status})"
                )),
            };
        };
        let operation = &self.doc["paths"][&template][method.to_lowercase()];
        if operation.is_null() {
            return match status {
                405 => Ok(()),
                _ => Err(format!(
                    "{method} {template}: operation not in /openapi.json ({status})"
                )),
            };
        }
        let mut response = &operation["responses"][status.to_string()];
        if response.is_null() {
            return Err(format!(
                "{method} {template}: status {status} not documented (body: {body})"
            ));
        }
        if let Some(reference) = response["$ref"].as_str() {
            response = self.pointer(reference);
        }
        let Some(schema) = response["content"]["application/json"]
            .get("schema")
            .filter(|_| content_type.is_some_and(|c| c.starts_with("application/json")))
        else {
            // A documented non-JSON answer (a CSV download, a 204) has no schema to check.
            return Ok(());
        };
        let instance: Value = serde_json::from_str(body)
            .map_err(|e| format!("{method} {template} {status}: body is not JSON ({e}): {body}"))?;
        let location = format!("{method} {template} {status}");
        let validator = self.validator(&location, schema)?;
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{location}: {} in {instance}", errors.join("; ")))
        }
    }

    fn pointer(&self, reference: &str) -> &Value {
        let pointer = reference.strip_prefix('#').expect("local reference");
        self.doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling reference {reference}"))
    }

    fn validator(
        &self,
        location: &str,
        schema: &Value,
    ) -> Result<std::sync::Arc<jsonschema::Validator>, String> {
        let mut cache = self.validators.lock().expect("validator cache");
        if let Some(found) = cache.get(location) {
            return Ok(found.clone());
        }
        // References point into the document's components, so they travel with the schema.
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [schema],
        });
        let validator = std::sync::Arc::new(
            jsonschema::validator_for(&root).map_err(|e| format!("{location}: bad schema: {e}"))?,
        );
        cache.insert(location.to_owned(), validator.clone());
        Ok(validator)
    }
}
