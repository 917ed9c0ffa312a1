// Handlers written as async functions that await nothing, as partners often write them: each returns a
// promise that settles in the turn that read its request. Not one of the reference files: the
// bench's `async` server (not run by default: BENCH_SERVERS=noop,async).
const ok = async () => {};
export default { identify: ok, track: ok, page: ok, screen: ok, group: ok, alias: ok, delete: ok };
