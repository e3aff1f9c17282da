//! Errors and export notices in the UI's language: the plain [`Problem`]s and
//! [`ExportNotice`]s that workers, jobs and exporters fill, worded from the message files.

use crate::tr_lang;
use crate::types::problem::{ExportNotice, FolderWritten, NoticeKind, Problem};
use crate::ui::i18n::Lang;

/// `problem` in `lang`.
pub fn problem_text(lang: Lang, problem: &Problem) -> String {
    match problem {
        Problem::ReadFile { file, detail } => {
            tr_lang!(
                lang,
                "err-read-file",
                file = file.as_str(),
                detail = detail.as_str()
            )
        }
        Problem::WriteFile { file, detail } => {
            tr_lang!(
                lang,
                "err-write-file",
                file = file.as_str(),
                detail = detail.as_str()
            )
        }
        Problem::NotACheckpoint { file, reason } => tr_lang!(
            lang,
            "err-not-checkpoint",
            file = file.as_str(),
            reason = reason.as_str()
        ),
        Problem::UnsafePickle { file, what } => {
            tr_lang!(
                lang,
                "err-unsafe-pickle",
                file = file.as_str(),
                what = what.as_str()
            )
        }
        Problem::MissingTensor { file, name } => {
            tr_lang!(
                lang,
                "err-missing-tensor",
                file = file.as_str(),
                name = name.as_str()
            )
        }
        Problem::TensorShape {
            file,
            name,
            expected,
            got,
        } => tr_lang!(
            lang,
            "err-tensor-shape",
            file = file.as_str(),
            name = name.as_str(),
            expected = expected.as_str(),
            got = got.as_str()
        ),
        Problem::CorruptTensor { file, name, reason } => tr_lang!(
            lang,
            "err-corrupt-tensor",
            file = file.as_str(),
            name = name.as_str(),
            reason = reason.as_str()
        ),
        Problem::ImageFormat { file } => tr_lang!(lang, "err-image-format", file = file.as_str()),
        Problem::ImageEmpty {
            file,
            width,
            height,
        } => tr_lang!(
            lang,
            "err-image-empty",
            file = file.as_str(),
            width = *width,
            height = *height
        ),
        Problem::ImageTooLarge {
            file,
            width,
            height,
            megapixels,
            limit,
        } => tr_lang!(
            lang,
            "err-image-too-large",
            file = file.as_str(),
            width = *width,
            height = *height,
            megapixels = *megapixels,
            limit = *limit
        ),
        Problem::ImageTruncated { file } => {
            tr_lang!(lang, "err-image-truncated", file = file.as_str())
        }
        Problem::ImageDecode { file, reason } => tr_lang!(
            lang,
            "err-image-decode",
            file = file.as_str(),
            reason = reason.as_str()
        ),
        Problem::NotAModelFolder { dir } => {
            tr_lang!(lang, "err-not-model-folder", dir = dir.as_str())
        }
        Problem::ModelFolderLacks { name, dir } => tr_lang!(
            lang,
            "err-model-folder-lacks",
            name = name.as_str(),
            dir = dir.as_str()
        ),
        Problem::UnsupportedModelType { name, supported } => tr_lang!(
            lang,
            "err-unsupported-model-type",
            name = name.as_str(),
            supported = supported.as_str()
        ),
        Problem::NoModelType { supported } => {
            tr_lang!(lang, "err-no-model-type", supported = supported.as_str())
        }
        Problem::EmptyText => tr_lang!(lang, "err-empty-text"),
        Problem::NoKnownTokens => tr_lang!(lang, "err-no-known-tokens"),
        Problem::AnnotationFile { detail } => {
            tr_lang!(lang, "err-annotation-file", detail = detail.as_str())
        }
        Problem::NothingToExport(notices) => {
            let reasons = if notices.is_empty() {
                tr_lang!(lang, "err-no-object")
            } else {
                let lines: Vec<String> = notices.iter().map(|n| notice_text(lang, n)).collect();
                lines.join("; ")
            };
            tr_lang!(lang, "err-nothing-to-export", reasons = reasons)
        }
        Problem::DataYaml { detail } => tr_lang!(lang, "err-data-yaml", detail = detail.as_str()),
        Problem::NoMaskToExport => tr_lang!(lang, "err-no-mask"),
        Problem::NoImage => tr_lang!(lang, "err-no-image"),
        Problem::EarlierSaveFailed => tr_lang!(lang, "err-earlier-save"),
        Problem::Cancelled => tr_lang!(lang, "err-cancelled"),
        Problem::NotEncoded => tr_lang!(lang, "err-not-encoded"),
        Problem::NoSamModel => tr_lang!(lang, "err-no-sam-model"),
        Problem::NoTextModel => tr_lang!(lang, "err-no-text-model"),
        Problem::WorkerBusy => tr_lang!(lang, "err-worker-busy"),
        Problem::WorkerStopped => tr_lang!(lang, "err-worker-stopped"),
        Problem::Other(english) => english.clone(),
    }
}

/// `err` in `lang` (its first cause of a kind the UI translates, else its English line).
pub fn error_text(lang: Lang, err: &anyhow::Error) -> String {
    problem_text(lang, &crate::error::problem(err))
}

/// One export notice in `lang`.
pub fn notice_text(lang: Lang, notice: &ExportNotice) -> String {
    let object = tr_lang!(
        lang,
        "notice-object",
        image = notice.image.as_str(),
        n = notice.object,
        label = notice.label.as_str()
    );
    match notice.kind {
        NoticeKind::SizeMismatch { mask, image } => tr_lang!(
            lang,
            "notice-size",
            object = object,
            mw = mask.0,
            mh = mask.1,
            iw = image.0,
            ih = image.1
        ),
        NoticeKind::Empty => tr_lang!(lang, "notice-empty", object = object),
        NoticeKind::TooThin => tr_lang!(lang, "notice-too-thin", object = object),
        NoticeKind::ThinPartsLost(n) => tr_lang!(lang, "notice-thin-parts", object = object, n = n),
        NoticeKind::HolesLost { holes, format } => tr_lang!(
            lang,
            "notice-holes",
            object = object,
            n = holes,
            format = format
        ),
        NoticeKind::SeparateLines(n) => tr_lang!(lang, "notice-lines", object = object, n = n),
    }
}

/// The status line for `path` written with `notices`: the first notice and how many more.
pub fn written_text(lang: Lang, path: &str, notices: &[ExportNotice]) -> String {
    match notices {
        [] => tr_lang!(lang, "wrote-file", path = path),
        [one] => tr_lang!(
            lang,
            "wrote-file-note",
            path = path,
            note = notice_text(lang, one)
        ),
        [first, rest @ ..] => tr_lang!(
            lang,
            "wrote-file-notes",
            path = path,
            note = notice_text(lang, first),
            more = rest.len()
        ),
    }
}

/// The status line for a folder export: what was written, then its notices.
pub fn folder_written_text(
    lang: Lang,
    written: &FolderWritten,
    notices: &[ExportNotice],
) -> String {
    let head = match written {
        FolderWritten::Coco {
            path,
            objects,
            images,
        } => tr_lang!(
            lang,
            "folder-wrote-coco",
            path = path.as_str(),
            objects = *objects,
            images = *images
        ),
        FolderWritten::Yolo { dir, files } => {
            tr_lang!(
                lang,
                "folder-wrote-yolo",
                dir = dir.as_str(),
                files = *files
            )
        }
        FolderWritten::LabelMe { dir, files } => {
            tr_lang!(
                lang,
                "folder-wrote-labelme",
                dir = dir.as_str(),
                files = *files
            )
        }
    };
    std::iter::once(head)
        .chain(notices.iter().map(|n| notice_text(lang, n)))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_problem() -> Vec<Problem> {
        let file = || "/tmp/x.pth".to_string();
        let notice = ExportNotice {
            image: "cat.png".into(),
            object: 2,
            label: "cat".into(),
            kind: NoticeKind::HolesLost {
                holes: 1,
                format: "YOLO",
            },
        };
        vec![
            Problem::ReadFile {
                file: file(),
                detail: "No such file".into(),
            },
            Problem::WriteFile {
                file: file(),
                detail: "Permission denied".into(),
            },
            Problem::NotACheckpoint {
                file: file(),
                reason: "truncated".into(),
            },
            Problem::UnsafePickle {
                file: file(),
                what: "posix.system".into(),
            },
            Problem::MissingTensor {
                file: file(),
                name: "a.b".into(),
            },
            Problem::TensorShape {
                file: file(),
                name: "a.b".into(),
                expected: "[2, 3]".into(),
                got: "[3, 2]".into(),
            },
            Problem::CorruptTensor {
                file: file(),
                name: "a.b".into(),
                reason: "short".into(),
            },
            Problem::ImageFormat { file: file() },
            Problem::ImageEmpty {
                file: file(),
                width: 0,
                height: 5,
            },
            Problem::ImageTooLarge {
                file: file(),
                width: 30000,
                height: 20000,
                megapixels: 600,
                limit: 250,
            },
            Problem::ImageTruncated { file: file() },
            Problem::ImageDecode {
                file: file(),
                reason: "bad huffman".into(),
            },
            Problem::NotAModelFolder {
                dir: "/tmp/x.pth".into(),
            },
            Problem::ModelFolderLacks {
                name: "config.json".into(),
                dir: "/tmp/x.pth".into(),
            },
            Problem::UnsupportedModelType {
                name: "llama".into(),
                supported: "bert, gpt2".into(),
            },
            Problem::NoModelType {
                supported: "bert, gpt2".into(),
            },
            Problem::EmptyText,
            Problem::NoKnownTokens,
            Problem::AnnotationFile {
                detail: "not JSON".into(),
            },
            Problem::NothingToExport(vec![notice]),
            Problem::NothingToExport(vec![]),
            Problem::DataYaml {
                detail: "bad".into(),
            },
            Problem::NoMaskToExport,
            Problem::NoImage,
            Problem::EarlierSaveFailed,
            Problem::Cancelled,
            Problem::NotEncoded,
            Problem::NoSamModel,
            Problem::NoTextModel,
            Problem::WorkerBusy,
            Problem::WorkerStopped,
        ]
    }

    /// Every problem has its own wording in each language (no key shown raw, French differs
    /// from English) and keeps what the user needs to act: the file and the tensor.
    #[test]
    fn every_problem_is_worded_in_both_languages() {
        for p in every_problem() {
            let (en, fr) = (problem_text(Lang::En, &p), problem_text(Lang::Fr, &p));
            for text in [&en, &fr] {
                assert!(
                    !text.starts_with("err-") && !text.contains("notice-"),
                    "{text}"
                );
            }
            assert_ne!(en, fr, "{p:?}");
            for needle in ["/tmp/x.pth", "a.b", "cat.png"] {
                if en.contains(needle) {
                    assert!(fr.contains(needle), "{fr}");
                }
            }
        }
        let shape = &every_problem()[5];
        assert_eq!(
            problem_text(Lang::En, shape),
            "tensor `a.b` has shape [3, 2], expected [2, 3], in /tmp/x.pth"
        );
        assert_eq!(
            problem_text(Lang::Fr, shape),
            "le tenseur `a.b` a la forme [3, 2] au lieu de [2, 3], dans /tmp/x.pth"
        );
    }

    /// Typed causes become problems through any context; the English notice equals the
    /// CLI's line; other errors stay as their English line.
    #[test]
    fn errors_become_problems_and_notices_read_alike() {
        let err = anyhow::Error::new(crate::weights::WeightsError::Missing {
            name: "mask_decoder.x".into(),
            path: "/m.pth".into(),
        })
        .context("loading the model");
        assert_eq!(
            crate::error::problem(&err),
            Problem::MissingTensor {
                file: "/m.pth".into(),
                name: "mask_decoder.x".into()
            }
        );
        assert_eq!(
            error_text(Lang::Fr, &err),
            "le tenseur `mask_decoder.x` manque dans /m.pth"
        );
        let other = anyhow::anyhow!("something else").context("while testing");
        assert_eq!(
            error_text(Lang::Fr, &other),
            "while testing: something else"
        );
        for kind in [
            NoticeKind::SizeMismatch {
                mask: (3, 4),
                image: (5, 6),
            },
            NoticeKind::Empty,
            NoticeKind::TooThin,
            NoticeKind::ThinPartsLost(2),
            NoticeKind::HolesLost {
                holes: 3,
                format: "COCO",
            },
            NoticeKind::SeparateLines(2),
        ] {
            let n = ExportNotice {
                image: "a.png".into(),
                object: 1,
                label: "dog".into(),
                kind,
            };
            assert_eq!(notice_text(Lang::En, &n), n.to_string());
            assert_ne!(notice_text(Lang::Fr, &n), n.to_string());
        }
    }
}
