{
  "targets": [
    {
      "target_name": "tsnfs_native",
      "sources": ["addon.c", "fdpass.c", "poller.c", "dio.c", "ioengine.c", "stat.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_c": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "ldflags": ["-pthread"],
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ]
    }
  ]
}
