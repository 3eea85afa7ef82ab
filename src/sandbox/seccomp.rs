//! A seccomp BPF program (pure code) handed to bubblewrap with `--seccomp FD`.
//!
//! Default action: allow. Denied with `EPERM`: `ptrace`, mount-related calls, namespace
//! calls, kernel keyring, `bpf`, `perf_event_open`, `userfaultfd`, module and kexec loading,
//! `io_uring`, `process_vm_*`, and `socket` for every family except `AF_UNIX` (a second network
//! fence behind the empty network namespace). Foreign architectures and the x32 ABI are refused.

/// Denied syscalls (x86_64 numbers).
#[cfg(target_arch = "x86_64")]
const DENIED: &[(u32, &str)] = &[
    (101, "ptrace"),
    (135, "personality"),
    (153, "vhangup"),
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
    (442, "mount_setattr"),
];

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_EPERM: u32 = 0x0005_0000 | 1;
const AF_UNIX: u32 = 1;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0..2].copy_from_slice(&code.to_ne_bytes());
    b[2] = jt;
    b[3] = jf;
    b[4..8].copy_from_slice(&k.to_ne_bytes());
    b
}

/// The filter as raw `struct sock_filter` bytes, or `None` on architectures without a
/// table (the sandbox then reports seccomp as inactive).
pub(crate) fn program(allow_inet: bool) -> Option<Vec<u8>> {
    #[cfg(target_arch = "x86_64")]
    {
        const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
        const SYS_SOCKET: u32 = 41;
        let mut p: Vec<[u8; 8]> = vec![
            ins(BPF_LD_W_ABS, 0, 0, 4), // arch
            ins(BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
            ins(BPF_RET_K, 0, 0, RET_KILL_PROCESS),
            ins(BPF_LD_W_ABS, 0, 0, 0),        // syscall number
            ins(BPF_JGE_K, 0, 1, 0x4000_0000), // x32 ABI
            ins(BPF_RET_K, 0, 0, RET_EPERM),
        ];
        for &(nr, _) in DENIED {
            p.push(ins(BPF_JEQ_K, 0, 1, nr));
            p.push(ins(BPF_RET_K, 0, 0, RET_EPERM));
        }
        if !allow_inet {
            p.push(ins(BPF_JEQ_K, 0, 4, SYS_SOCKET)); // not socket: jump to the final allow
            p.push(ins(BPF_LD_W_ABS, 0, 0, 16)); // args[0], low 32 bits (little endian)
            p.push(ins(BPF_JEQ_K, 0, 1, AF_UNIX));
            p.push(ins(BPF_RET_K, 0, 0, RET_ALLOW));
            p.push(ins(BPF_RET_K, 0, 0, RET_EPERM));
        }
        p.push(ins(BPF_RET_K, 0, 0, RET_ALLOW));
        Some(p.concat())
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

    #[test]
    fn program_shape() {
        assert_eq!(
            program(true).unwrap().len() + 5 * 8,
            program(false).unwrap().len()
        );
        let p = program(false).unwrap();
        assert_eq!(p.len() % 8, 0);
        let n = p.len() / 8;
        assert_eq!(n, 6 + 2 * DENIED.len() + 6);
        assert!(n < 4096, "BPF programs are limited to 4096 instructions");
        // Last instruction allows.
        assert_eq!(&p[p.len() - 4..], &RET_ALLOW.to_ne_bytes());
        let mut nrs: Vec<u32> = DENIED.iter().map(|d| d.0).collect();
        nrs.dedup();
        assert_eq!(nrs.len(), DENIED.len());
    }
}
