//! A seccomp BPF program (pure code) handed to bubblewrap with `--seccomp FD`.
//!
//! Default action: allow. Denied with `EPERM`: `ptrace`, mount-related calls, namespace
//! calls (`unshare`, `setns`, and `clone` with any `CLONE_NEW*` flag), kernel keyring, `bpf`,
//! `perf_event_open`, `userfaultfd`, module and kexec loading, `io_uring`, `process_vm_*`,
//! `pidfd_getfd`, `process_madvise`, `modify_ldt`, `memfd_secret`, and `socket` for every
//! family except `AF_UNIX` (a second network fence behind the empty network namespace).
//! `clone3` answers `ENOSYS`, so libc falls back to `clone`, whose flags a filter can see.
//! Foreign architectures are killed and the x32 ABI is refused. An architecture without a
//! table gets no program, and the sandbox then refuses to start.

/// Denied syscalls (x86_64 numbers).
#[cfg(target_arch = "x86_64")]
const DENIED: &[(u32, &str)] = &[
    (101, "ptrace"),
    (135, "personality"),
    (153, "vhangup"),
    (154, "modify_ldt"),
    (155, "pivot_root"),
    (159, "adjtimex"),
    (161, "chroot"),
    (163, "acct"),
    (164, "settimeofday"),
    (165, "mount"),
    (166, "umount2"),
    (167, "swapon"),
    (168, "swapoff"),
    (169, "reboot"),
    (172, "iopl"),
    (173, "ioperm"),
    (175, "init_module"),
    (176, "delete_module"),
    (179, "quotactl"),
    (227, "clock_settime"),
    (246, "kexec_load"),
    (248, "add_key"),
    (249, "request_key"),
    (250, "keyctl"),
    (272, "unshare"),
    (298, "perf_event_open"),
    (303, "name_to_handle_at"),
    (304, "open_by_handle_at"),
    (308, "setns"),
    (310, "process_vm_readv"),
    (311, "process_vm_writev"),
    (312, "kcmp"),
    (313, "finit_module"),
    (320, "kexec_file_load"),
    (321, "bpf"),
    (323, "userfaultfd"),
    (425, "io_uring_setup"),
    (426, "io_uring_enter"),
    (427, "io_uring_register"),
    (428, "open_tree"),
    (429, "move_mount"),
    (430, "fsopen"),
    (431, "fsconfig"),
    (432, "fsmount"),
    (433, "fspick"),
    (438, "pidfd_getfd"),
    (440, "process_madvise"),
    (442, "mount_setattr"),
    (443, "quotactl_fd"),
    (447, "memfd_secret"),
];

#[cfg(target_arch = "x86_64")]
const SYS_SOCKET: u32 = 41;
#[cfg(target_arch = "x86_64")]
const SYS_CLONE: u32 = 56;
#[cfg(target_arch = "x86_64")]
const SYS_CLONE3: u32 = 435;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;

/// Every `CLONE_NEW*` flag `clone` accepts (`CLONE_NEWNS`, `NEWCGROUP`, `NEWUTS`, `NEWIPC`,
/// `NEWUSER`, `NEWPID`, `NEWNET`; `CLONE_NEWTIME` only exists for `clone3` and `unshare`).
const CLONE_NEW_MASK: u32 = 0x7E02_0000;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
const AF_UNIX: u32 = 1;
/// Offsets into `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0_LO: u32 = 16;

/// A jump target of the tiny assembler below.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Label {
    Allow,
    Eperm,
    Enosys,
    Kill,
    CloneCheck,
    SocketCheck,
}

/// One instruction; conditional jumps name labels, resolved once the program is laid out.
#[derive(Clone, Copy, Debug)]
enum Ins {
    Ld(u32),
    And(u32),
    /// Jump to the label when the accumulator equals `k`, else fall through.
    JeqTo(u32, Label),
    /// Jump to the label when the accumulator is >= `k`, else fall through.
    JgeTo(u32, Label),
    /// Fall through when equal, else jump to the label.
    JneTo(u32, Label),
    Ret(u32),
    /// A label's position.
    Here(Label),
}

fn raw(code: u16, jt: u8, jf: u8, k: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0..2].copy_from_slice(&code.to_ne_bytes());
    b[2] = jt;
    b[3] = jf;
    b[4..8].copy_from_slice(&k.to_ne_bytes());
    b
}

/// Lays out `prog` and resolves jumps (classic BPF jumps forward only, at most 255).
fn assemble(prog: &[Ins]) -> Vec<u8> {
    let mut at = std::collections::HashMap::new();
    let mut n = 0usize;
    for i in prog {
        match i {
            Ins::Here(l) => {
                at.insert(*l, n);
            }
            _ => n += 1,
        }
    }
    let mut out = Vec::with_capacity(n * 8);
    let mut pc = 0usize;
    let off = |pc: usize, l: &Label| -> u8 {
        let target = at[l];
        assert!(target > pc, "BPF jumps go forward");
        u8::try_from(target - pc - 1).expect("BPF jump within 255 instructions")
    };
    for i in prog {
        let ins = match i {
            Ins::Here(_) => continue,
            Ins::Ld(k) => raw(BPF_LD_W_ABS, 0, 0, *k),
            Ins::And(k) => raw(BPF_ALU_AND_K, 0, 0, *k),
            Ins::JeqTo(k, l) => raw(BPF_JEQ_K, off(pc, l), 0, *k),
            Ins::JgeTo(k, l) => raw(BPF_JGE_K, off(pc, l), 0, *k),
            Ins::JneTo(k, l) => raw(BPF_JEQ_K, 0, off(pc, l), *k),
            Ins::Ret(k) => raw(BPF_RET_K, 0, 0, *k),
        };
        out.extend_from_slice(&ins);
        pc += 1;
    }
    out
}

/// The filter as raw `struct sock_filter` bytes, or `None` on architectures without a
/// table.
pub(crate) fn program(allow_inet: bool) -> Option<Vec<u8>> {
    #[cfg(target_arch = "x86_64")]
    {
        use Ins::*;
        use Label::*;
        let mut p = vec![
            Ld(OFF_ARCH),
            JneTo(AUDIT_ARCH, Kill),
            Ld(OFF_NR),
            JgeTo(0x4000_0000, Eperm), // the x32 ABI
            JeqTo(SYS_CLONE3, Enosys),
            JeqTo(SYS_CLONE, CloneCheck),
        ];
        if !allow_inet {
            p.push(JeqTo(SYS_SOCKET, SocketCheck));
        }
        // The long deny list: split so every jump to its target stays short.
        for chunk in DENIED.chunks(40) {
            let mut local = Vec::new();
            for &(nr, _) in chunk {
                local.push(JeqTo(nr, Eperm));
            }
            p.extend(local);
        }
        p.extend([
            Ret(RET_ALLOW),
            Here(CloneCheck),
            Ld(OFF_ARG0_LO),
            And(CLONE_NEW_MASK),
            JeqTo(0, Allow),
            Ret(RET_ERRNO | EPERM),
            Here(SocketCheck),
            Ld(OFF_ARG0_LO),
            JeqTo(AF_UNIX, Allow),
            Ret(RET_ERRNO | EPERM),
            Here(Allow),
            Ret(RET_ALLOW),
            Here(Eperm),
            Ret(RET_ERRNO | EPERM),
            Here(Enosys),
            Ret(RET_ERRNO | ENOSYS),
            Here(Kill),
            Ret(RET_KILL_PROCESS),
        ]);
        Some(assemble(&p))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = allow_inet;
        None
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for the instructions the program uses, to check its
    /// decisions without a kernel.
    fn run(p: &[u8], nr: u32, arch: u32, arg0: u32) -> u32 {
        let data = |off: u32| match off {
            OFF_NR => nr,
            OFF_ARCH => arch,
            OFF_ARG0_LO => arg0,
            _ => 0,
        };
        let ins: Vec<(u16, u8, u8, u32)> = p
            .chunks(8)
            .map(|c| {
                (
                    u16::from_ne_bytes([c[0], c[1]]),
                    c[2],
                    c[3],
                    u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect();
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let (code, jt, jf, k) = ins[pc];
            pc += 1;
            match code {
                BPF_LD_W_ABS => acc = data(k),
                BPF_ALU_AND_K => acc &= k,
                BPF_JEQ_K => pc += if acc == k { jt } else { jf } as usize,
                BPF_JGE_K => pc += if acc >= k { jt } else { jf } as usize,
                BPF_RET_K => return k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn decisions() {
        let p = program(false).unwrap();
        assert!(
            p.len() / 8 < 4096,
            "BPF programs are limited to 4096 instructions"
        );
        let eperm = RET_ERRNO | EPERM;
        let a = AUDIT_ARCH;
        assert_eq!(run(&p, 0, a, 0), RET_ALLOW, "read");
        assert_eq!(run(&p, 101, a, 0), eperm, "ptrace");
        assert_eq!(run(&p, 447, a, 0), eperm, "memfd_secret");
        assert_eq!(run(&p, 438, a, 0), eperm, "pidfd_getfd");
        assert_eq!(run(&p, SYS_CLONE3, a, 0), RET_ERRNO | ENOSYS, "clone3");
        // clone for threads and fork (SIGCHLD | CLONE_VM | ...) is fine, namespaces are not.
        assert_eq!(run(&p, SYS_CLONE, a, 0x0000_0011), RET_ALLOW);
        assert_eq!(run(&p, SYS_CLONE, a, 0x003d_0f00), RET_ALLOW);
        for ns in [
            0x0002_0000,
            0x1000_0000,
            0x2000_0000,
            0x4000_0000,
            0x0200_0000,
        ] {
            assert_eq!(run(&p, SYS_CLONE, a, ns | 0x11), eperm, "{ns:#x}");
        }
        assert_eq!(run(&p, SYS_SOCKET, a, AF_UNIX), RET_ALLOW);
        assert_eq!(run(&p, SYS_SOCKET, a, 2), eperm, "AF_INET");
        assert_eq!(run(&p, 0x4000_0000 | 1, a, 0), eperm, "x32");
        assert_eq!(run(&p, 0, 0x4000_0003, 0), RET_KILL_PROCESS, "i386");
        let open = program(true).unwrap();
        assert_eq!(run(&open, SYS_SOCKET, a, 2), RET_ALLOW, "network enabled");
        assert_eq!(run(&open, 101, a, 0), eperm);
        for &(nr, name) in DENIED {
            assert_eq!(run(&p, nr, a, 0), eperm, "{name}");
        }
        let mut nrs: Vec<u32> = DENIED.iter().map(|d| d.0).collect();
        nrs.sort_unstable();
        nrs.dedup();
        assert_eq!(nrs.len(), DENIED.len());
    }
}
