//! One-line error messages for stderr, and errors as plain data the UI translates.

/// The error and its causes on one line, without repeating a cause already contained in an
/// earlier part.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// The error as the UI words it: the first cause of a kind the UI translates, else the English
/// line ([`one_line`]).
pub fn problem(err: &anyhow::Error) -> crate::types::Problem {
    use crate::image_io::ImageLoadError as I;
    use crate::types::Problem as P;
    use crate::weights::WeightsError as W;
    let file = |p: &std::path::Path| p.display().to_string();
    if let Some(crate::files::WriteError(path)) = err.downcast_ref() {
        return P::WriteFile {
            file: file(path),
            detail: err.root_cause().to_string(),
        };
    }
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<W>() {
            return match e {
                W::Io { source, path } => P::ReadFile {
                    file: file(path),
                    detail: source.to_string(),
                },
                W::NotACheckpoint { reason, path } => P::NotACheckpoint {
                    file: file(path),
                    reason: reason.clone(),
                },
                W::Unsafe { what, path } => P::UnsafePickle {
                    file: file(path),
                    what: what.clone(),
                },
                W::Missing { name, path } => P::MissingTensor {
                    file: file(path),
                    name: name.clone(),
                },
                W::Shape {
                    name,
                    expected,
                    got,
                    path,
                } => P::TensorShape {
                    file: file(path),
                    name: name.clone(),
                    expected: format!("{expected:?}"),
                    got: format!("{got:?}"),
                },
                W::Cancelled { .. } => P::Cancelled,
                W::Corrupt { name, reason, path } => P::CorruptTensor {
                    file: file(path),
                    name: name.clone(),
                    reason: reason.clone(),
                },
            };
        }
        if let Some(e) = cause.downcast_ref::<I>() {
            return match e {
                I::Io { source, path } => P::ReadFile {
                    file: file(path),
                    detail: source.to_string(),
                },
                I::UnknownFormat { path } => P::ImageFormat { file: file(path) },
                I::Empty {
                    width,
                    height,
                    path,
                } => P::ImageEmpty {
                    file: file(path),
                    width: *width,
                    height: *height,
                },
                I::TooLarge {
                    width,
                    height,
                    path,
                } => P::ImageTooLarge {
                    file: file(path),
                    width: *width,
                    height: *height,
                    megapixels: (*width as u64 * *height as u64) / 1_000_000,
                    limit: crate::image_io::MAX_PIXELS / 1_000_000,
                },
                I::Truncated { path } => P::ImageTruncated { file: file(path) },
                I::Decode { reason, path } => P::ImageDecode {
                    file: file(path),
                    reason: reason.clone(),
                },
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::annotate::ExportError>() {
            return match e {
                crate::annotate::ExportError::Nothing(notices) => {
                    P::NothingToExport(notices.clone())
                }
                crate::annotate::ExportError::DataYaml(detail) => P::DataYaml {
                    detail: detail.clone(),
                },
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::annotate::folder::FolderFileError>() {
            return P::AnnotationFile {
                detail: e.to_string(),
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::worker::SendError>() {
            return match e {
                crate::worker::SendError::Busy => P::WorkerBusy,
                crate::worker::SendError::Stopped => P::WorkerStopped,
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::model::text::tokenizer::TextModelError>() {
            use crate::model::text::tokenizer::TextModelError as T;
            return match e {
                T::NotAFolder(dir) => P::NotAModelFolder { dir: dir.clone() },
                T::MissingFile { name, dir } => P::ModelFolderLacks {
                    name: name.clone(),
                    dir: dir.clone(),
                },
                T::UnsupportedModelType { name, supported } => P::UnsupportedModelType {
                    name: name.clone(),
                    supported: supported.clone(),
                },
                T::NoModelType(supported) => P::NoModelType {
                    supported: supported.clone(),
                },
                T::EmptyText => P::EmptyText,
                T::NoKnownTokens => P::NoKnownTokens,
            };
        }
        if cause.is::<crate::model::sam::Cancelled>() {
            return P::Cancelled;
        }
    }
    P::Other(one_line(err))
}
