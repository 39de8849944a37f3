//! `${{ expr }}` templates: parsing, reference checking, and rendering against a run's context.

use std::fmt;

/// What a `${{ ... }}` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `vars.NAME`
    Var(String),
    /// `env.NAME`
    Env(String),
    /// `secrets.NAME`
    Secret(String),
    /// `steps.NAME.PATH...` — a capture or an output of an earlier step.
    Step { step: String, path: Vec<String> },
    /// `run.id`: unique per run.
    RunId,
    /// `run.started_at`: RFC 3339 start time of the run.
    RunStartedAt,
    /// `run.iteration`: 1-based iteration number (`--iterations`).
    RunIteration,
    /// `uuid()`: a fresh random UUID at each use.
    Uuid,
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Var(n) => write!(f, "vars.{n}"),
            Expr::Env(n) => write!(f, "env.{n}"),
            Expr::Secret(n) => write!(f, "secrets.{n}"),
            Expr::Step { step, path } => write!(f, "steps.{step}.{}", path.join(".")),
            Expr::RunId => f.write_str("run.id"),
            Expr::RunStartedAt => f.write_str("run.started_at"),
            Expr::RunIteration => f.write_str("run.iteration"),
            Expr::Uuid => f.write_str("uuid()"),
        }
    }
}

/// A piece of a template: literal text or an expression, with its byte offset in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Expr { expr: Expr, offset: usize },
}

/// A parsed template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

/// A template that does not parse, or a reference that does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// Byte offset in the template source where the problem starts.
    pub offset: usize,
    pub message: String,
    /// A nearby valid name, for "did you mean".
    pub suggestion: Option<String>,
}

impl TemplateError {
    fn at(offset: usize, message: impl Into<String>) -> Self {
        TemplateError {
            offset,
            message: message.into(),
            suggestion: None,
        }
    }
}

const OPEN: &str = "${{";
const CLOSE: &str = "}}";

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_expr(src: &str, offset: usize) -> Result<Expr, TemplateError> {
    let s = src.trim();
    if s == "uuid()" {
        return Ok(Expr::Uuid);
    }
    let mut segs = s.split('.');
    let head = segs.next().unwrap_or_default();
    let rest: Vec<&str> = segs.collect();
    if let Some(bad) = rest.iter().find(|p| !is_name(p)) {
        return Err(TemplateError::at(
            offset,
            format!("invalid name `{bad}` in `{s}`: names use letters, digits, `_` and `-`"),
        ));
    }
    let one = |kind: &str| -> Result<String, TemplateError> {
        match rest.as_slice() {
            [name] => Ok(name.to_string()),
            _ => Err(TemplateError::at(
                offset,
                format!("`{s}`: expected `{kind}.NAME`"),
            )),
        }
    };
    match head {
        "vars" => Ok(Expr::Var(one("vars")?)),
        "env" => Ok(Expr::Env(one("env")?)),
        "secrets" => Ok(Expr::Secret(one("secrets")?)),
        "steps" if rest.len() >= 2 => Ok(Expr::Step {
            step: rest[0].to_string(),
            path: rest[1..].iter().map(|p| p.to_string()).collect(),
        }),
        "steps" => Err(TemplateError::at(
            offset,
            format!("`{s}`: expected `steps.STEP.CAPTURE`"),
        )),
        "run" => match rest.as_slice() {
            ["id"] => Ok(Expr::RunId),
            ["started_at"] => Ok(Expr::RunStartedAt),
            ["iteration"] => Ok(Expr::RunIteration),
            _ => Err(TemplateError {
                offset,
                message: format!("unknown run field in `{s}`"),
                suggestion: crate::suggest::closest(
                    rest.join(".").as_str(),
                    ["id", "started_at", "iteration"].iter().copied(),
                )
                .map(|n| format!("run.{n}")),
            }),
        },
        _ => Err(TemplateError {
            offset,
            message: format!(
                "unknown expression `{s}`: expected vars.*, env.*, secrets.*, steps.*, run.* or uuid()"
            ),
            suggestion: crate::suggest::closest(
                head,
                ["vars", "env", "secrets", "steps", "run"].iter().copied(),
            )
            .map(|h| format!("{h}.{}", rest.join("."))),
        }),
    }
}

impl Template {
    /// Parses a string that may hold `${{ ... }}` expressions.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = src;
        let mut base = 0;
        while let Some(start) = rest.find(OPEN) {
            if start > 0 {
                parts.push(Part::Lit(rest[..start].to_string()));
            }
            let inner_start = start + OPEN.len();
            let Some(len) = rest[inner_start..].find(CLOSE) else {
                return Err(TemplateError::at(
                    base + start,
                    "unclosed `${{`: expected `}}`",
                ));
            };
            let inner = &rest[inner_start..inner_start + len];
            parts.push(Part::Expr {
                expr: parse_expr(inner, base + start)?,
                offset: base + start,
            });
            let consumed = inner_start + len + CLOSE.len();
            base += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// True when the template is plain text.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// Every expression with its offset.
    pub fn exprs(&self) -> impl Iterator<Item = (&Expr, usize)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr { expr, offset } => Some((expr, *offset)),
            Part::Lit(_) => None,
        })
    }

    /// Renders the template, asking `resolver` for each expression's value.
    pub fn render(&self, resolver: &dyn Resolve) -> Result<String, RenderError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Expr { expr, .. } => out.push_str(&resolver.resolve(expr)?),
            }
        }
        Ok(out)
    }
}

/// Parses and renders in one go; for strings already validated at load time.
pub fn render(src: &str, resolver: &dyn Resolve) -> Result<String, RenderError> {
    if !src.contains(OPEN) {
        return Ok(src.to_string());
    }
    Template::parse(src)
        .map_err(|e| RenderError(e.message))?
        .render(resolver)
}

/// A value that could not be produced at run time (an unset env var, a capture that found nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// Supplies the value of an expression at run time.
pub trait Resolve: Sync {
    fn resolve(&self, expr: &Expr) -> Result<String, RenderError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Resolve for Fixed {
        fn resolve(&self, e: &Expr) -> Result<String, RenderError> {
            match e {
                Expr::Var(n) if n == "host" => Ok("example.test".into()),
                Expr::RunId => Ok("r1".into()),
                other => Err(RenderError(format!("no value for {other}"))),
            }
        }
    }

    #[test]
    fn parses_literals_and_expressions_with_offsets() {
        let t = Template::parse("https://${{ vars.host }}/p/${{run.id}}").unwrap();
        let exprs: Vec<_> = t.exprs().collect();
        assert_eq!(exprs[0], (&Expr::Var("host".into()), 8));
        assert_eq!(exprs[1], (&Expr::RunId, 27));
        assert_eq!(t.render(&Fixed).unwrap(), "https://example.test/p/r1");
    }

    #[test]
    fn step_paths_keep_every_segment() {
        let t = Template::parse("${{ steps.login.claims.sub }}").unwrap();
        assert_eq!(
            t.exprs().next().unwrap().0,
            &Expr::Step {
                step: "login".into(),
                path: vec!["claims".into(), "sub".into()]
            }
        );
    }

    #[test]
    fn errors_point_at_the_expression_and_suggest() {
        let e = Template::parse("x ${{ var.host }}").unwrap_err();
        assert_eq!(e.offset, 2);
        assert_eq!(e.suggestion.as_deref(), Some("vars.host"));
        let e = Template::parse("${{ vars.host").unwrap_err();
        assert!(e.message.contains("unclosed"), "{}", e.message);
        assert!(Template::parse("${{ steps.login }}").is_err());
        assert!(Template::parse("${{ run.idd }}").is_err());
    }

    #[test]
    fn render_reports_unresolvable_values() {
        let err = render("${{ env.NOPE }}", &Fixed).unwrap_err();
        assert!(err.0.contains("env.NOPE"));
        assert_eq!(render("plain", &Fixed).unwrap(), "plain");
    }
}
