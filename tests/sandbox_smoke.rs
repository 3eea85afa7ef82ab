use rlm::sandbox::{BwrapSandbox, NoHostCalls, Sandbox, SessionSpec};
use rlm::SandboxConfig;

#[test]
fn smoke() {
    futures_lite::future::block_on(async {
        let mut c = SandboxConfig::default(); c.memory_bytes = 1 << 40; let sb = BwrapSandbox::new(c);
        let t = std::time::Instant::now();
        let mut s = sb.start(SessionSpec::empty()).await.unwrap();
        eprintln!("start {:?}", t.elapsed());
        let r = s.execute("x = 41\nprint('hi')", &NoHostCalls).await.unwrap();
        eprintln!("{r:?}");
        let r = s.execute("x + 1", &NoHostCalls).await.unwrap();
        eprintln!("{r:?}");
        let r = s.execute("import os; print(os.getuid(), os.listdir('/'), open('/proc/1/cmdline').read())\n1/0", &NoHostCalls).await.unwrap();
        eprintln!("{r:?}");
    });
}
