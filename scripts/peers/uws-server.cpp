// A uWebSockets server for scripts/bench.sh --uws (built by build-uws.sh; measurement only).
//
//   uws-server --bind HOST:PORT
//   /broadcast  every connection subscribes to "broadcast"; each message is published to every
//               other subscriber with its opcode (WebSocket::publish leaves out the sender)
//   /*          every message is echoed with its opcode
//
// One thread, no TLS, no compression, no idle timeout, backpressure limits out of the way.
// Prints "listening on HOST:PORT" on stdout once listening, as the other peers do.

#include "App.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct Data {};

uWS::App::WebSocketBehavior<Data> settings() {
    uWS::App::WebSocketBehavior<Data> b;
    b.compression = uWS::DISABLED;
    b.maxPayloadLength = 64u << 20;
    b.maxBackpressure = 64u << 20;
    b.closeOnBackpressureLimit = false;
    // An idle timeout of 0 is off only without automatic pings.
    b.idleTimeout = 0;
    b.sendPingsAutomatically = false;
    b.resetIdleTimeoutOnSend = false;
    return b;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3 || std::strcmp(argv[1], "--bind") != 0) {
        std::fprintf(stderr, "usage: %s --bind HOST:PORT\n", argv[0]);
        return 1;
    }
    std::string bind = argv[2];
    auto colon = bind.rfind(':');
    if (colon == std::string::npos) {
        std::fprintf(stderr, "--bind wants HOST:PORT, not %s\n", argv[2]);
        return 1;
    }
    std::string host = bind.substr(0, colon);
    int port = std::atoi(bind.c_str() + colon + 1);

    auto broadcast = settings();
    broadcast.open = [](auto *ws) { ws->subscribe("broadcast"); };
    broadcast.message = [](auto *ws, std::string_view message, uWS::OpCode op) {
        ws->publish("broadcast", message, op, false);
    };
    auto echo = settings();
    echo.message = [](auto *ws, std::string_view message, uWS::OpCode op) {
        ws->send(message, op, false);
    };

    uWS::App()
        .ws<Data>("/broadcast", std::move(broadcast))
        .ws<Data>("/*", std::move(echo))
        .listen(host, port, LIBUS_LISTEN_EXCLUSIVE_PORT, [&](us_listen_socket_t *socket) {
            if (!socket) {
                std::fprintf(stderr, "uws-server: cannot listen on %s\n", bind.c_str());
                std::exit(1);
            }
            std::printf("listening on %s\n", bind.c_str());
            std::fflush(stdout);
        })
        .run();
    return 0;
}
