import CBLASShim

/// The CPU's SIMD features that the OS has enabled, from CPUID and XGETBV (`tb_cpu_features`).
public struct CPUFeatures: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let sse2 = CPUFeatures(rawValue: UInt32(TB_CPU_SSE2))
    public static let avx = CPUFeatures(rawValue: UInt32(TB_CPU_AVX))
    public static let avx2 = CPUFeatures(rawValue: UInt32(TB_CPU_AVX2))
    public static let fma = CPUFeatures(rawValue: UInt32(TB_CPU_FMA))
    public static let f16c = CPUFeatures(rawValue: UInt32(TB_CPU_F16C))
    public static let avx512f = CPUFeatures(rawValue: UInt32(TB_CPU_AVX512F))
    public static let avx512dq = CPUFeatures(rawValue: UInt32(TB_CPU_AVX512DQ))
    public static let avx512cd = CPUFeatures(rawValue: UInt32(TB_CPU_AVX512CD))
    public static let avx512bw = CPUFeatures(rawValue: UInt32(TB_CPU_AVX512BW))
    public static let avx512vl = CPUFeatures(rawValue: UInt32(TB_CPU_AVX512VL))
    public static let avx512bf16 = CPUFeatures(rawValue: UInt32(TB_CPU_AVX512_BF16))
    public static let avx512fp16 = CPUFeatures(rawValue: UInt32(TB_CPU_AVX512_FP16))
    public static let avx512vnni = CPUFeatures(rawValue: UInt32(TB_CPU_AVX512_VNNI))
    public static let neon = CPUFeatures(rawValue: UInt32(TB_CPU_NEON))

    /// The set OpenBLAS's AVX-512 (SkylakeX) kernels need.
    public static let avx512Kernels: CPUFeatures = [.avx512f, .avx512cd, .avx512bw, .avx512dq, .avx512vl]

    /// This machine's features.
    public static var current: CPUFeatures { CPUFeatures(rawValue: tb_cpu_features()) }

    static let names: [(CPUFeatures, String)] = [
        (.sse2, "sse2"), (.avx, "avx"), (.avx2, "avx2"), (.fma, "fma"), (.f16c, "f16c"),
        (.avx512f, "avx512f"), (.avx512dq, "avx512dq"), (.avx512cd, "avx512cd"), (.avx512bw, "avx512bw"),
        (.avx512vl, "avx512vl"), (.avx512bf16, "avx512_bf16"), (.avx512fp16, "avx512_fp16"),
        (.avx512vnni, "avx512_vnni"), (.neon, "neon"),
    ]

    /// Feature names, in the spelling of /proc/cpuinfo.
    public var names: [String] { Self.names.filter { contains($0.0) }.map(\.1) }
}
