//! Where the models run and in which floating-point format: the user's device and dtype choice
//! and what they resolve to, shared by the app, the workers, the CLI and the tests.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};

/// Where models run, as the user asks (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA or Metal when compiled in and present, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// An NVIDIA GPU (needs the `cuda` feature).
    Cuda,
    /// An Apple GPU (needs the `metal` feature).
    Metal,
}

/// The format of SAM's image encoder, as the user asks (`--dtype`); the prompt encoder, the
/// mask decoder and the text models run in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DTypeChoice {
    /// f16 on a GPU, f32 on the CPU.
    #[default]
    Auto,
    /// 32-bit floats.
    F32,
    /// Half precision (masks checked equal to f32's).
    F16,
    /// bfloat16 (GPU only; not checked against f32 here).
    Bf16,
}

/// The floating-point format SAM's image encoder runs in. The prompt encoder, the mask decoder
/// and the text models always run in f32: they are cheap, and their outputs are what the app
/// shows digit for digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 32-bit floats: the CPU kernels' format and PyTorch's default.
    #[default]
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16: f32's exponent range with 8 bits of mantissa.
    Bf16,
}

impl Precision {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
            Self::Bf16 => DType::BF16,
        }
    }

    /// `"f32"`, `"f16"` or `"bf16"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }

    /// What `--dtype auto` picks on `device`: f16 on a GPU, the half format whose masks are
    /// checked to equal the f32 ones (IoU ≥ 0.99 on the fixtures, `tests/sam_parity.rs`, with
    /// norms and softmaxes in f32 as PyTorch's autocast runs them); f32 on the CPU, whose fast
    /// kernels are f32 (half-precision products there run through candle's generic ops and are
    /// slower). bf16 is there for GPUs on request but cannot be checked on a CPU.
    pub fn auto_for(device: &Device) -> Self {
        if device.is_cpu() {
            Self::F32
        } else {
            Self::F16
        }
    }
}

impl DTypeChoice {
    /// The precision this choice means on `device`.
    pub fn resolve(self, device: &Device) -> Precision {
        match self {
            Self::Auto => Precision::auto_for(device),
            Self::F32 => Precision::F32,
            Self::F16 => Precision::F16,
            Self::Bf16 => Precision::Bf16,
        }
    }
}

/// candle's error without the backtrace it captures under `RUST_BACKTRACE` (a one-line
/// message, not a screen of frames).
fn without_backtrace(e: candle_core::Error) -> candle_core::Error {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => *inner,
        other => other,
    }
}

/// Opens the device the user asked for.
pub fn select_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => {
            if !candle_core::utils::cuda_is_available() {
                bail!("CUDA is not available: build with `--features cuda` on a machine with an NVIDIA GPU");
            }
            Device::new_cuda(0)
                .map_err(without_backtrace)
                .context("cannot open CUDA device 0")
        }
        DeviceChoice::Metal => {
            if !candle_core::utils::metal_is_available() {
                bail!("Metal is not available: build with `--features metal` on macOS");
            }
            Device::new_metal(0)
                .map_err(without_backtrace)
                .context("cannot open Metal device 0")
        }
        DeviceChoice::Auto => {
            if candle_core::utils::cuda_is_available() {
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok(d);
                }
            }
            if candle_core::utils::metal_is_available() {
                if let Ok(d) = Device::new_metal(0) {
                    return Ok(d);
                }
            }
            Ok(Device::Cpu)
        }
    }
}

/// A short name of a device ("cpu", "cuda:0", "metal:0").
pub fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda:0".into(),
        Device::Metal(_) => "metal:0".into(),
    }
}

/// A device and the image encoder's format, chosen once at start-up and shared by the workers.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Where the models run.
    pub device: Device,
    /// The SAM image encoder's format.
    pub precision: Precision,
}

impl Runtime {
    /// Opens the device `device` asks for and resolves `dtype` on it.
    pub fn select(device: DeviceChoice, dtype: DTypeChoice) -> Result<Self> {
        let device = select_device(device)?;
        let precision = dtype.resolve(&device);
        Ok(Self { device, precision })
    }

    /// The CPU in f32 (tests, and the CLI's defaults without a GPU).
    pub fn cpu() -> Self {
        Self {
            device: Device::Cpu,
            precision: Precision::F32,
        }
    }

    /// The device's short name ("cpu", "cuda:0").
    pub fn device_name(&self) -> String {
        device_name(&self.device)
    }
}

/// How much lower than the UI thread the model and job threads run (a Unix nice value): a
/// frame is drawn as soon as it is due, even while an image encodes on every core.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to nice 10 (Linux; elsewhere
/// nothing). The workers, the view jobs and the compute pool's threads call it at start.
pub fn lower_thread_priority() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: gettid and setpriority only read their integer arguments; with
        // PRIO_PROCESS and a thread id, setpriority changes this thread alone (Linux).
        unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE);
        }
    }
}

/// Lowers the calling thread's scheduling priority to the lowest, nice 19 (Linux; elsewhere
/// nothing): work done ahead (encoding the next image) takes only the CPU nothing else wants.
pub fn idle_thread_priority() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: as in `lower_thread_priority`.
        unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
        }
    }
}

/// Starts rayon's global pool (candle's and our kernels' threads) with `threads` threads at
/// background priority. Call once at start-up, before any model runs; later calls (and a pool
/// already started) are left as they are.
pub fn init_compute_pool(threads: usize) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| lower_thread_priority())
        .build_global();
}
