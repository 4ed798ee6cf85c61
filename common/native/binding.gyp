{
  "targets": [
    {
      "target_name": "robustmq_crc32c",
      "sources": ["crc32c.c"],
      "cflags": ["-O3", "-std=c11"]
    }
  ]
}
