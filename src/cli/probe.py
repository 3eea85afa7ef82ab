# rlm sandbox check: what the jail looks like from inside. Prints one JSON object.
import json, os, socket, errno
st = {l.split(':')[0]: l.split(':', 1)[1].strip() for l in open('/proc/self/status') if ':' in l}
ns = {n: os.readlink('/proc/self/ns/' + n) for n in ['user', 'mnt', 'pid', 'net', 'ipc', 'uts', 'cgroup']}
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close(); inet = 'allowed'
except OSError as e:
    inet = errno.errorcode.get(e.errno, str(e.errno))
ifaces = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]
cg_mem = None
for f in ('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'):
    try:
        v = open(f).read().strip()
        if v != 'max' and int(v) < (1 << 60):
            cg_mem = int(v)
        break
    except (OSError, ValueError):
        pass
limits = {}
for l in open('/proc/self/limits').readlines()[1:]:
    name = l[:26].strip(); soft = l[26:47].strip()
    limits[name] = soft
print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'ns': ns, 'no_new_privs': st.get('NoNewPrivs'),
    'seccomp': st.get('Seccomp'), 'cap_eff': st.get('CapEff'), 'inet_socket': inet, 'interfaces': ifaces,
    'cg_mem': cg_mem, 'limits': limits, 'root': sorted(os.listdir('/'))}))
