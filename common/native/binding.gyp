{
  "targets": [
    {
      "target_name": "robustmq_crc32c",
      "sources": ["crc32c.c"],
      "cflags": ["-O3", "-std=c11"]
    },
    {
      "target_name": "robustmq_uvtcp",
      "sources": ["uvtcp.c"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    }
  ]
}
