//! `--device cpu|cuda:N`.

use candle_core::Device;

/// `cpu`, `cuda` (GPU 0) or `cuda:N`. CUDA needs a build with `--features cuda`.
pub fn parse(spec: &str) -> Result<Device, String> {
    let ordinal = match spec {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => spec
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("bad device `{spec}`: use cpu, cuda or cuda:N"))?,
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(format!(
            "device `{spec}`: this afr-toolchain was built without CUDA; rebuild with `--features cuda`"
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| format!("device `{spec}`: {e}"))
}

/// A short name for logs and reference files.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        other => match other.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
            loc => format!("{loc:?}"),
        },
    }
}
