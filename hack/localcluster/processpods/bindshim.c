/* Preloaded into every process pod: a bind() to the wildcard address with a fixed port binds
 * the pod's own address instead (MODELSHIP_LOCAL_POD_IP), as if the pod had a network
 * namespace of its own. Process pods share the machine's namespace, so two pods listening on
 * 0.0.0.0:2222 (TensorFlow's gRPC server does) would otherwise clash.
 *
 * - AF_INET 0.0.0.0:P → POD_IP:P.
 * - AF_INET6 [::]:P on a dual-stack socket → [::ffff:POD_IP]:P (the socket keeps its family;
 *   callers such as gRPC made it dual-stack to accept IPv4). An IPv6-only socket is left alone:
 *   pods are reached over IPv4 only.
 * - Port 0 is left alone: that is a client picking a source port, and a loopback source
 *   address would cut it off from anything off this machine.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static int pod_address(struct in_addr *out) {
    const char *ip = getenv("MODELSHIP_LOCAL_POD_IP");
    return ip != NULL && inet_pton(AF_INET, ip, out) == 1;
}

static int dual_stack(int fd) {
    int v6only = 1;
    socklen_t size = sizeof v6only;
    return getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &size) == 0 && v6only == 0;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind;
    struct in_addr pod;
    if (real_bind == NULL) {
        real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    }
    if (addr == NULL || !pod_address(&pod)) {
        return real_bind(fd, addr, len);
    }
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in v4;
        memcpy(&v4, addr, sizeof v4);
        if (v4.sin_addr.s_addr == htonl(INADDR_ANY) && v4.sin_port != 0) {
            v4.sin_addr = pod;
            return real_bind(fd, (const struct sockaddr *)&v4, sizeof v4);
        }
    } else if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 v6;
        memcpy(&v6, addr, sizeof v6);
        if (IN6_IS_ADDR_UNSPECIFIED(&v6.sin6_addr) && v6.sin6_port != 0 && dual_stack(fd)) {
            memset(&v6.sin6_addr, 0, sizeof v6.sin6_addr);
            v6.sin6_addr.s6_addr[10] = 0xff;
            v6.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&v6.sin6_addr.s6_addr[12], &pod, sizeof pod);
            return real_bind(fd, (const struct sockaddr *)&v6, sizeof v6);
        }
    }
    return real_bind(fd, addr, len);
}
