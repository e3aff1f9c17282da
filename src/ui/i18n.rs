//! The UI's languages: English and French messages in Fluent files kept beside the code
//! (`i18n/en.ftl`, `i18n/fr.ftl`), read with `fluent-bundle`. The language in use belongs to an
//! egui context (so two app windows, or two UI tests, can differ); [`tr!`](crate::tr) looks a
//! message up in it. A test fails when a message used in the code, or present in one language,
//! is missing in the other.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

/// A language of the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// French.
    Fr,
}

impl Lang {
    /// Every language, in menu order.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Fr];

    /// The language's own name, for the menu.
    pub fn name(self) -> &'static str {
        match self {
            Self::En => "English",
            Self::Fr => "Français",
        }
    }

    /// The language of a POSIX locale name (`fr_FR.UTF-8`, `fr`, `en_GB`, `C`): French for
    /// `fr…`, else English.
    pub fn from_locale(locale: &str) -> Self {
        if locale.to_ascii_lowercase().starts_with("fr") {
            Self::Fr
        } else {
            Self::En
        }
    }

    /// The system's language, from `LC_ALL`, `LC_MESSAGES` or `LANG` (the first one set).
    pub fn system() -> Self {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .map_or(Self::En, |l| Self::from_locale(&l))
    }

    fn index(self) -> usize {
        match self {
            Self::En => 0,
            Self::Fr => 1,
        }
    }
}

/// The message files, English then French.
pub const SOURCES: [&str; 2] = [
    include_str!("../../i18n/en.ftl"),
    include_str!("../../i18n/fr.ftl"),
];

fn bundles() -> &'static [FluentBundle<FluentResource>; 2] {
    static BUNDLES: OnceLock<[FluentBundle<FluentResource>; 2]> = OnceLock::new();
    BUNDLES.get_or_init(|| {
        let make = |lang: Lang, tag: &str| {
            let id: unic_langid::LanguageIdentifier = tag.parse().expect("a valid language tag");
            let mut bundle = FluentBundle::new_concurrent(vec![id]);
            // No Unicode isolation marks around arguments: egui would draw them as boxes.
            bundle.set_use_isolating(false);
            // A file that does not parse keeps the messages that do (the test names the error).
            let resource = FluentResource::try_new(SOURCES[lang.index()].to_string())
                .unwrap_or_else(|(partial, _)| partial);
            let _ = bundle.add_resource(resource);
            bundle
        };
        [make(Lang::En, "en"), make(Lang::Fr, "fr")]
    })
}

fn lang_id() -> egui::Id {
    egui::Id::unique("segattn-language")
}

/// The language `ctx` shows.
pub fn lang(ctx: &egui::Context) -> Lang {
    ctx.data(|d| d.get_temp(lang_id())).unwrap_or_default()
}

/// Makes `ctx` show `lang`.
pub fn set_lang(ctx: &egui::Context, lang: Lang) {
    ctx.data_mut(|d| d.insert_temp(lang_id(), lang));
}

/// Message `key` in `lang` with `args`; the key itself when the message is missing (a test
/// keeps that from happening).
pub fn message(lang: Lang, key: &str, args: &[(&str, FluentValue<'_>)]) -> String {
    let bundle = &bundles()[lang.index()];
    let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
        return key.to_string();
    };
    let mut fluent_args = FluentArgs::new();
    for (name, value) in args {
        fluent_args.set(*name, value.clone());
    }
    let mut errors = Vec::new();
    bundle
        .format_pattern(
            pattern,
            (!args.is_empty()).then_some(&fluent_args),
            &mut errors,
        )
        .into_owned()
}

/// A UI message in the language of a context: `tr!(ui, "key")`, or with arguments
/// `tr!(ui, "key", word = label, n = 3)`. The first argument is anything with `.ctx()` (a
/// `Ui`); [`tr_ctx!`](crate::tr_ctx) takes an `&egui::Context`, [`tr_lang!`](crate::tr_lang)
/// a [`Lang`].
#[macro_export]
macro_rules! tr {
    ($ui:expr, $key:literal $(, $name:ident = $value:expr)* $(,)?) => {
        $crate::tr_lang!($crate::ui::i18n::lang($ui.ctx()), $key $(, $name = $value)*)
    };
}

/// [`tr!`](crate::tr) for an `&egui::Context`.
#[macro_export]
macro_rules! tr_ctx {
    ($ctx:expr, $key:literal $(, $name:ident = $value:expr)* $(,)?) => {
        $crate::tr_lang!($crate::ui::i18n::lang($ctx), $key $(, $name = $value)*)
    };
}

/// [`tr!`](crate::tr) in a given [`Lang`] (for closures that have no `Ui`).
#[macro_export]
macro_rules! tr_lang {
    ($lang:expr, $key:literal $(, $name:ident = $value:expr)* $(,)?) => {
        $crate::ui::i18n::message(
            $lang,
            $key,
            &[$((stringify!($name), ::fluent_bundle::FluentValue::from($value))),*],
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    /// The message ids of a file, failing on any syntax error.
    fn ids(source: &str, name: &str) -> BTreeSet<String> {
        let resource = FluentResource::try_new(source.to_string())
            .unwrap_or_else(|(_, errors)| panic!("{name} does not parse: {errors:?}"));
        resource
            .entries()
            .filter_map(|e| match e {
                fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The text of every source under `dir` but this file.
    fn sources(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("src readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("i18n.rs") {
                out.push(std::fs::read_to_string(&path).expect("source readable"));
            }
        }
    }

    /// Every `tr!(x, "key"` (`tr_ctx!`, `tr_lang!`) of `texts`.
    fn used_keys(texts: &[String]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for text in texts {
            let calls = ["tr!(", "tr_ctx!(", "tr_lang!("];
            for (i, _) in calls.iter().flat_map(|c| text.match_indices(c)) {
                let rest = &text[i..];
                let Some(open) = rest.find('"') else { continue };
                let close = rest[open + 1..].find('"').expect("closing quote");
                out.insert(rest[open + 1..open + 1 + close].to_string());
            }
        }
        out
    }

    #[test]
    fn every_message_exists_in_both_languages() {
        let en = ids(SOURCES[0], "i18n/en.ftl");
        let fr = ids(SOURCES[1], "i18n/fr.ftl");
        let only_en: Vec<_> = en.difference(&fr).collect();
        let only_fr: Vec<_> = fr.difference(&en).collect();
        assert!(only_en.is_empty(), "missing in French: {only_en:?}");
        assert!(only_fr.is_empty(), "missing in English: {only_fr:?}");
        let mut texts = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut texts,
        );
        let used = used_keys(&texts);
        assert!(
            used.len() > 20,
            "the scan found the UI's messages: {used:?}"
        );
        let missing: Vec<_> = used.difference(&en).collect();
        assert!(
            missing.is_empty(),
            "used in the code, in no file: {missing:?}"
        );
        // Keys handed to `message` directly (a task's description) appear as string literals.
        let quoted = |k: &String| texts.iter().any(|t| t.contains(&format!("\"{k}\"")));
        let unused: Vec<_> = en
            .iter()
            .filter(|k| !used.contains(*k) && !quoted(k))
            .collect();
        assert!(unused.is_empty(), "in the files, used nowhere: {unused:?}");
    }

    #[test]
    fn messages_take_their_arguments_in_each_language() {
        let word = || [("word", FluentValue::from("chat"))];
        assert_eq!(
            message(Lang::En, "bars-title", &word()),
            "What “chat” looks at"
        );
        assert_eq!(
            message(Lang::Fr, "bars-title", &word()),
            "Ce que « chat » regarde"
        );
        assert_eq!(message(Lang::Fr, "no-such-message", &[]), "no-such-message");
        assert_eq!(Lang::from_locale("fr_FR.UTF-8"), Lang::Fr);
        assert_eq!(Lang::from_locale("en_US.UTF-8"), Lang::En);
        assert_eq!(Lang::from_locale("C"), Lang::En);
    }
}
