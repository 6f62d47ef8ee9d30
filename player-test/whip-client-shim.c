/* LD_PRELOAD shim for Debian 12's simple-whip-client (player-test only).
 *
 * whip-client links libsoup 2.4; libnice, which GStreamer's webrtcbin needs, links gupnp-igd
 * -> gupnp 1.6 -> libsoup 3. libsoup 3's constructor looks up libsoup 2's `soup_uri_new` in
 * the process and aborts ("Using libsoup2 and libsoup3 in the same process is not
 * supported"), so the packaged client cannot start at all. Only UPnP port mapping would use
 * libsoup 3 and nothing here does, so this shim answers "not found" to that one lookup and
 * passes every other one through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>

typedef int gboolean;
typedef void GModule;

gboolean g_module_symbol(GModule *module, const char *name, void **symbol) {
    static gboolean (*real)(GModule *, const char *, void **);
    if (!real)
        real = (gboolean (*)(GModule *, const char *, void **))dlsym(RTLD_NEXT, "g_module_symbol");
    if (name && strcmp(name, "soup_uri_new") == 0) {
        if (symbol)
            *symbol = 0;
        return 0;
    }
    return real(module, name, symbol);
}
