vcl 4.1;
# An LL-HLS edge cache in front of `llhls serve`, usable as shipped with Debian's varnish (7.1):
#   cp player-test/varnish-edge.vcl /etc/varnish/default.vcl && systemctl restart varnish
# Debian's unit listens on port 6081; the backend below is llhls at 127.0.0.1:8080. Change
# `.host`/`.port` for another layout. The player tests and benches use this same file (with
# the backend port swapped for theirs) and run
#   varnishd -F -a 127.0.0.1:PORT -f varnish-edge.vcl -n WORKDIR -s malloc,256m
#
# Why Varnish for LL-HLS: concurrent requests for one URL wait on one origin fetch (the
# waiting list) and are all woken the moment the origin answers, and a part the origin is
# still writing is streamed to every waiting viewer as it grows. nginx's proxy_cache_lock
# wakes its waiters only every 500 ms (see benches/README.md).

backend llhls {
    .host = "127.0.0.1";
    .port = "8080";
    # Blocking playlist requests and hinted parts are held by the origin for up to three
    # target durations before the first byte: never cut them short.
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 30s;
    .connect_timeout = 2s;
}

sub vcl_recv {
    # Only GET and HEAD are cached; WHIP (POST/PATCH/DELETE on /whip/...) and the publish
    # page's requests go straight through.
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # The origin's own status endpoints are never cached.
    if (req.url ~ "^/(healthz|metrics|streams\.json)") {
        return (pass);
    }
    # Viewers carry no cookies or credentials the origin uses: drop them so that every viewer
    # shares one cache object (Varnish's built-in logic passes requests with a Cookie).
    unset req.http.Cookie;
    unset req.http.Authorization;
    # The cache key is the whole URL, query string included (Varnish's default hash):
    # _HLS_msn, _HLS_part and _HLS_skip select different playlists. Do not strip it.
    return (hash);
}

sub vcl_backend_response {
    # Honour the origin's Cache-Control (Varnish's default): blocking playlists max-age 6 x
    # target duration, plain playlist reloads TD/2, parts/segments/init immutable for a year,
    # errors no-store. Grace (serving an expired object while refetching) would hand plain
    # playlist reloads a stale playlist: none for playlists, a little for media.
    if (bereq.url ~ "\.m3u8") {
        set beresp.grace = 0s;
    } else {
        set beresp.grace = 10s;
    }
    # Stream every response as it arrives: a hinted part the origin is still writing reaches
    # every waiting viewer byte by byte, not when it is complete.
    set beresp.do_stream = true;
    # An uncacheable answer (an error with no-store) must not serialise later requests for the
    # same URL for long: remember "do not wait for this URL" for one second only (the built-in
    # logic would keep it for two minutes).
    if (beresp.ttl <= 0s || beresp.http.Cache-Control ~ "(no-store|no-cache|private)") {
        set beresp.ttl = 1s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    return (deliver);
}

sub vcl_deliver {
    # Like the nginx edge's X-Cache-Status: HIT when the object came from the cache (or a
    # fetch this request waited for), MISS when this request went to the origin.
    if (obj.hits > 0) {
        set resp.http.X-Cache-Status = "HIT";
    } else {
        set resp.http.X-Cache-Status = "MISS";
    }
}
