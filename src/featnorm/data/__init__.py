"""Datasets in, shards out: manifests of image folders, lists, RecordIO and the generated demo;
decoding images from any source."""
