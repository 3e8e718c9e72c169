// Stands in for the worker in benches that run no workflow (bench/console-inbox.ts writes its runs' events
// directly): the test harness waits for a worker's ready line, and bundling the workflows at start-up can take
// longer than that wait on a busy machine.
process.stdout.write('worker started (none: this bench runs no workflow)\n');
const idle = setInterval(() => {}, 1 << 30);
process.on('SIGTERM', () => { clearInterval(idle); process.exit(0); });
