import CBLASShim

/// OpenBLAS could not be loaded.
public struct BLASLoadError: Error, CustomStringConvertible {
    public let description: String
}

/// The BLAS library in use: its kernel set, where that choice came from, and its threads.
public enum BLASRuntime {
    /// Where the OpenBLAS kernel set came from.
    public enum CoreSource: String, Sendable, Codable {
        /// OpenBLAS's own CPU detection.
        case library
        /// `TRIBUTARY_BLAS_CORETYPE`, or an inherited `OPENBLAS_CORETYPE` that Tributary kept.
        case user
        /// Tributary's choice from the CPU's features (AVX-512 gets SkylakeX kernels).
        case tributary
    }

    /// Loads OpenBLAS and LAPACKE (`tb_blas_load`), choosing the kernel set first. Idempotent.
    public static func load() throws(BLASLoadError) {
        if tb_blas_load() != 0 { throw BLASLoadError(description: String(cString: tb_blas_load_error())) }
    }

    /// `openblas_get_corename()`, e.g. "SkylakeX".
    public static var coreName: String { String(cString: tb_blas_core_name()) }
    /// `openblas_get_config()`, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64".
    public static var configuration: String { String(cString: tb_blas_config()) }
    /// The shared library the BLAS routines come from.
    public static var libraryPath: String { String(cString: tb_blas_library_path()) }
    public static var coreSource: CoreSource {
        switch tb_blas_core_source() {
        case TB_CORE_FROM_USER: .user
        case TB_CORE_FROM_TRIBUTARY: .tributary
        default: .library
        }
    }

    /// An inherited `OPENBLAS_CORETYPE` that Tributary overrode because it would run
    /// AVX2 kernels on an AVX-512 CPU (`tb_blas_overridden_core`).
    public static var overriddenCoreSetting: String? {
        let name = String(cString: tb_blas_overridden_core())
        return name.isEmpty ? nil : name
    }

    /// BLAS threads (`openblas_get_num_threads`).
    public static var threads: Int { Int(tb_blas_get_threads()) }

    /// Sets BLAS threads (`openblas_set_num_threads`). Called before anything else loads OpenBLAS, it loads
    /// it with exactly that many (`tb_blas_set_threads`), so that no idle worker starts spinning; that first
    /// call sets `OPENBLAS_NUM_THREADS` for the moment of loading, so make it before starting threads that
    /// read the environment.
    public static func setThreads(_ count: Int) {
        precondition(count >= 1, "BLAS needs at least one thread, got \(count)")
        tb_blas_set_threads(Int32(count))
    }

    /// Gives each of `computePools` concurrent compute workers an equal share of the cores,
    /// so that pools x BLAS threads <= cores. Threads set by the user (`OPENBLAS_NUM_THREADS`) win.
    /// Returns the BLAS threads now in force.
    @discardableResult
    public static func configure(computePools: Int) -> Int {
        precondition(computePools >= 1, "at least one compute pool, got \(computePools)")
        if let user = userThreadSetting { return user }
        let share = threadsPerPool(availableCores: availableCores, computePools: computePools)
        setThreads(share)
        return share
    }

    /// Threads a process should use in all: the user's BLAS thread setting, else the available cores.
    public static var defaultThreads: Int { userThreadSetting ?? availableCores }

    /// An equal share of the cores for each pool, at least one thread.
    static func threadsPerPool(availableCores: Int, computePools: Int) -> Int {
        max(1, availableCores / max(computePools, 1))
    }

    /// Threads set by the user through `OPENBLAS_NUM_THREADS`, `GOTO_NUM_THREADS` or `OMP_NUM_THREADS`.
    static var userThreadSetting: Int? {
        let threads = Int(tb_blas_user_threads())
        return threads >= 1 ? threads : nil
    }

    /// Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (`tb_available_cpus`).
    public static var availableCores: Int { Int(tb_available_cpus()) }

    /// Whether `coreName` is one of OpenBLAS's AVX-512 kernel sets (`tb_blas_core_is_avx512`).
    public static func isAVX512Core(_ coreName: String) -> Bool { tb_blas_core_is_avx512(coreName) != 0 }
}
