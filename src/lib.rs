//! segattn: see inside Segment Anything and small text transformers.
//!
//! # Layers
//!
//! Each layer uses only the layers below it (`ARCHITECTURE.md` has the picture):
//!
//! | layer | modules | knows |
//! | --- | --- | --- |
//! | entry | `main.rs` → [`cli`] or [`app`] | clap (in [`cli`] only) |
//! | app and views | [`app`], [`ui`] | egui; talks to workers and jobs with plain data |
//! | background work | [`worker`] (models), [`jobs`] (view work), [`download`] | candle in [`worker`] only |
//! | models | [`model`], [`weights`], [`runtime`] | candle |
//! | plain data and pure functions | [`types`], [`analysis`], [`annotate`], [`viz`], [`image_io`], [`files`], [`error`], [`alloc`] | neither egui nor candle |
//!
//! # One click, from the pointer to the overlay
//!
//! 1. [`ui::segment::canvas`] turns the pointer event into a [`types::PointPrompt`] in image
//!    pixels ([`ui::segment::view::Canvas`]), records it in the prompt history and sends
//!    [`worker::sam::SamRequest::Predict`] (never blocking; the worker keeps only the newest).
//! 2. The SAM worker ([`worker::sam`]) runs the prompt encoder and mask decoder on the cached
//!    image embedding ([`model::sam::SamModel::predict`]): masks at full size, IoU, the decoder's
//!    attention, all plain data; it answers [`worker::sam::SamResponse::Prediction`] tagged with
//!    the image and request ids and asks egui to repaint.
//! 3. The next frame ([`app::SegattnApp::poll`]) hands the answer to the view, which starts a
//!    job ([`jobs::Slot`]) making one overlay texture per mask at display size.
//! 4. When the job is done the candidates replace the old ones and the canvas draws the chosen
//!    overlay tinted with the object's colour and the opacity. The status bar's "click" is this
//!    whole path.

pub mod alloc;
pub mod analysis;
pub mod annotate;
pub mod app;
pub mod cli;
pub mod download;
pub mod embed_cache;
pub mod error;
pub mod files;
pub mod image_io;
pub mod jobs;
pub mod model;
pub mod runtime;
pub mod types;
pub mod ui;
pub mod viz;
pub mod weights;
pub mod worker;
