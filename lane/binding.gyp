{
  "targets": [
    {
      "target_name": "lane",
      "sources": ["src/native/addon.c", "src/native/relay.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "xcode_settings": { "OTHER_CFLAGS": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"] },
      "conditions": [["OS=='win'", { "type": "none" }]]
    }
  ]
}
