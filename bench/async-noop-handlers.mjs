// The no-op handlers written as async functions that await nothing, as partners often write them: measures
// the answers of promises settled in their request's turn (the `async` server: BENCH_SERVERS=noop,async).
const ok = async () => {};
export default { identify: ok, track: ok, page: ok, screen: ok, group: ok, alias: ok, delete: ok };
