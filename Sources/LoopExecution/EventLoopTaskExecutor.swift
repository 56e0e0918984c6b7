import NIOCore

/// A `TaskExecutor` that runs jobs on one NIO event loop.
///
/// A task that prefers it (`withTaskExecutorPreference`, or `addTask(executorPreference:)`) reads from and
/// writes to that loop's channels without a thread hop each way: its writes happen in place, and an inbound
/// frame resumes it in the same loop turn. Such a task must not block or compute: it awaits the thread pools
/// for that.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        // From the loop itself this queues the job for the current turn, with no wake-up.
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
