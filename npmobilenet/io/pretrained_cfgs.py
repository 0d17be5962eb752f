"""timm's eval preprocessing for every MobileNet V1-V4 weight, by ``name.tag``.

Generated from timm 1.0.31 by ``tests/golden/make_pretrained_cfgs.py`` (the fields of
``timm.models.get_pretrained_cfg(name.tag)``); do not edit by hand.  ``DEFAULT_TAGS`` is the tag
``timm.create_model(name)`` picks.  The eval transform is ``imagenet.preprocess``: resize the
shorter side to ``floor(size / crop_pct)``, centre-crop ``size``, scale to [0, 1], normalise.
``num_classes`` tells ImageNet-1k heads (1000) from ImageNet-12k/21k ones.
"""
IMAGENET = (0.485, 0.456, 0.406)  # timm IMAGENET_DEFAULT_MEAN
INCEPTION = (0.5, 0.5, 0.5)  # timm IMAGENET_INCEPTION_MEAN / _STD
ZERO = (0.0, 0.0, 0.0)
ONE = (1.0, 1.0, 1.0)
IMAGENET_STD = (0.229, 0.224, 0.225)  # timm IMAGENET_DEFAULT_STD

# timm's ``_cfg`` defaults in mobilenetv3.py: for names without an entry below.
FALLBACK = (224, 0.875, "bilinear", IMAGENET, IMAGENET_STD, "center", 1000, None, None)

DEFAULT_TAGS = {
    'mobilenetv1_100': 'ra4_e3600_r224_in1k',
    'mobilenetv1_100h': 'ra4_e3600_r224_in1k',
    'mobilenetv1_125': 'ra4_e3600_r224_in1k',
    'mobilenetv2_035': 'untrained',
    'mobilenetv2_050': 'lamb_in1k',
    'mobilenetv2_075': 'untrained',
    'mobilenetv2_100': 'ra_in1k',
    'mobilenetv2_110d': 'ra_in1k',
    'mobilenetv2_120d': 'ra_in1k',
    'mobilenetv2_140': 'ra_in1k',
    'mobilenetv3_large_075': 'untrained',
    'mobilenetv3_large_100': 'ra_in1k',
    'mobilenetv3_large_150d': 'ra4_e3600_r256_in1k',
    'mobilenetv3_rw': 'rmsp_in1k',
    'mobilenetv3_small_050': 'lamb_in1k',
    'mobilenetv3_small_075': 'lamb_in1k',
    'mobilenetv3_small_100': 'lamb_in1k',
    'mobilenetv4_conv_aa_large': 'e230_r448_in12k_ft_in1k',
    'mobilenetv4_conv_aa_medium': 'untrained',
    'mobilenetv4_conv_blur_medium': 'e500_r224_in1k',
    'mobilenetv4_conv_large': 'e600_r384_in1k',
    'mobilenetv4_conv_medium': 'e500_r256_in1k',
    'mobilenetv4_conv_small': 'e2400_r224_in1k',
    'mobilenetv4_conv_small_035': 'untrained',
    'mobilenetv4_conv_small_050': 'e3000_r224_in1k',
    'mobilenetv4_hybrid_large': 'ix_e600_r384_in1k',
    'mobilenetv4_hybrid_large_075': 'untrained',
    'mobilenetv4_hybrid_medium': 'e200_r256_in12k_ft_in1k',
    'mobilenetv4_hybrid_medium_075': 'untrained',
    'tf_mobilenetv3_large_075': 'in1k',
    'tf_mobilenetv3_large_100': 'in1k',
    'tf_mobilenetv3_large_minimal_100': 'in1k',
    'tf_mobilenetv3_small_075': 'in1k',
    'tf_mobilenetv3_small_100': 'in1k',
    'tf_mobilenetv3_small_minimal_100': 'in1k',
}

# name.tag: (size, crop_pct, interpolation, mean, std, crop_mode, num_classes,
#            test_size, test_crop_pct)
CFGS = {
    'mobilenetv1_100.ra4_e3600_r224_in1k': (224, 0.875, 'bicubic', INCEPTION, INCEPTION, 'center', 1000, 256, 0.95),
    'mobilenetv1_100h.ra4_e3600_r224_in1k': (224, 0.875, 'bicubic', INCEPTION, INCEPTION, 'center', 1000, 256, 0.95),
    'mobilenetv1_125.ra4_e3600_r224_in1k': (224, 0.9, 'bicubic', INCEPTION, INCEPTION, 'center', 1000, 256, 1.0),
    'mobilenetv2_035.untrained': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv2_050.lamb_in1k': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv2_075.untrained': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv2_100.ra_in1k': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv2_110d.ra_in1k': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv2_120d.ra_in1k': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv2_140.ra_in1k': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv3_large_075.untrained': (224, 0.875, 'bilinear', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv3_large_100.miil_in21k': (224, 0.875, 'bilinear', ZERO, ONE, 'center', 11221, None, None),
    'mobilenetv3_large_100.miil_in21k_ft_in1k': (224, 0.875, 'bilinear', ZERO, ONE, 'center', 1000, None, None),
    'mobilenetv3_large_100.ra4_e3600_r224_in1k': (224, 0.95, 'bicubic', INCEPTION, INCEPTION, 'center', 1000, 256, 1.0),
    'mobilenetv3_large_100.ra_in1k': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv3_large_150d.ra4_e3600_r256_in1k': (256, 0.95, 'bilinear', INCEPTION, INCEPTION, 'center', 1000, 320, 1.0),
    'mobilenetv3_rw.rmsp_in1k': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv3_small_050.lamb_in1k': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv3_small_075.lamb_in1k': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv3_small_100.lamb_in1k': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv4_conv_aa_large.e230_r384_in12k': (384, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 11821, 448, 1.0),
    'mobilenetv4_conv_aa_large.e230_r384_in12k_ft_in1k': (384, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 480, 1.0),
    'mobilenetv4_conv_aa_large.e230_r448_in12k_ft_in1k': (448, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 544, 1.0),
    'mobilenetv4_conv_aa_large.e600_r384_in1k': (384, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 480, 1.0),
    'mobilenetv4_conv_aa_medium.untrained': (256, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv4_conv_blur_medium.e500_r224_in1k': (224, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 256, 1.0),
    'mobilenetv4_conv_large.e500_r256_in1k': (256, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 320, 1.0),
    'mobilenetv4_conv_large.e600_r384_in1k': (384, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 448, 1.0),
    'mobilenetv4_conv_medium.e180_ad_r384_in12k': (384, 1.0, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 11821, None, None),
    'mobilenetv4_conv_medium.e180_r384_in12k': (384, 1.0, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 11821, None, None),
    'mobilenetv4_conv_medium.e250_r384_in12k': (384, 1.0, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 11821, None, None),
    'mobilenetv4_conv_medium.e250_r384_in12k_ft_in1k': (384, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv4_conv_medium.e500_r224_in1k': (224, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 256, 1.0),
    'mobilenetv4_conv_medium.e500_r256_in1k': (256, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 320, 1.0),
    'mobilenetv4_conv_small.e1200_r224_in1k': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 256, 0.95),
    'mobilenetv4_conv_small.e2400_r224_in1k': (224, 0.875, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 256, 0.95),
    'mobilenetv4_conv_small.e3600_r256_in1k': (256, 0.95, 'bicubic', INCEPTION, INCEPTION, 'center', 1000, 320, 1.0),
    'mobilenetv4_conv_small_035.untrained': (224, 0.875, 'bicubic', INCEPTION, INCEPTION, 'center', 1000, 256, 0.95),
    'mobilenetv4_conv_small_050.e3000_r224_in1k': (224, 0.875, 'bicubic', INCEPTION, INCEPTION, 'center', 1000, 256, 0.95),
    'mobilenetv4_hybrid_large.e600_r384_in1k': (384, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 448, 1.0),
    'mobilenetv4_hybrid_large.ix_e600_r384_in1k': (384, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 448, 1.0),
    'mobilenetv4_hybrid_large_075.untrained': (256, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'mobilenetv4_hybrid_medium.e200_r256_in12k': (256, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 11821, 320, 1.0),
    'mobilenetv4_hybrid_medium.e200_r256_in12k_ft_in1k': (256, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 320, 1.0),
    'mobilenetv4_hybrid_medium.e500_r224_in1k': (224, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 256, 1.0),
    'mobilenetv4_hybrid_medium.ix_e550_r256_in1k': (256, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 320, 1.0),
    'mobilenetv4_hybrid_medium.ix_e550_r384_in1k': (384, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, 448, 1.0),
    'mobilenetv4_hybrid_medium_075.untrained': (224, 0.95, 'bicubic', IMAGENET, IMAGENET_STD, 'center', 1000, None, None),
    'tf_mobilenetv3_large_075.in1k': (224, 0.875, 'bilinear', INCEPTION, INCEPTION, 'center', 1000, None, None),
    'tf_mobilenetv3_large_100.in1k': (224, 0.875, 'bilinear', INCEPTION, INCEPTION, 'center', 1000, None, None),
    'tf_mobilenetv3_large_minimal_100.in1k': (224, 0.875, 'bilinear', INCEPTION, INCEPTION, 'center', 1000, None, None),
    'tf_mobilenetv3_small_075.in1k': (224, 0.875, 'bilinear', INCEPTION, INCEPTION, 'center', 1000, None, None),
    'tf_mobilenetv3_small_100.in1k': (224, 0.875, 'bilinear', INCEPTION, INCEPTION, 'center', 1000, None, None),
    'tf_mobilenetv3_small_minimal_100.in1k': (224, 0.875, 'bilinear', INCEPTION, INCEPTION, 'center', 1000, None, None),
}
